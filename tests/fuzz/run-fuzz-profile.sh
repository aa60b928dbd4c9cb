#!/bin/sh
# run-fuzz-profile.sh BUILDDIR [SECONDS]: build the profile/facts libFuzzer
# target (make fuzz-profile), seed it with the shipped profiles and the test
# fixtures, and fuzz for a bounded time. Fails on any crash, leak or
# sanitizer report.
set -eu
b=$(cd "$1" && pwd)
secs=${2:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
make -C "$b" -s fuzz-profile
work=$(mktemp -d /tmp/mig-fuzz-profile-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds"
# Seeds: mode byte (0 profile, 1 facts, 2 pre-flight) + a real file.
n=0
for f in "$src"/configs/profiles/*.yaml "$src"/tests/fixtures/profiles/*.yaml; do
    n=$((n + 1)); { printf '\000'; cat "$f"; } >"$work/seeds/p$n"
done
for f in "$src"/tests/fixtures/facts/*.json; do
    n=$((n + 1)); { printf '\001'; cat "$f"; } >"$work/seeds/f$n"
    n=$((n + 1)); { printf '\002'; cat "$f"; } >"$work/seeds/c$n"
done
n=$((n + 1))
{ printf '\002'; cat "$src/tests/fixtures/facts/src-host-guest.json"; printf '\n\000\n';
  cat "$src/tests/fixtures/facts/dst-skylake.json"; } >"$work/seeds/c$n"
echo "seeds: $(ls "$work/seeds" | wc -l) files"
cd "$work"
# A dictionary of the tokens the parsers care about.
cat >"$work/dict" <<'DICT'
"name:"
"cpu:"
"features:"
"mask:"
"vendor:"
"xen:"
"min_version:"
"max_version:"
"virt_caps:"
"tsc_scaling:"
"forbid:"
"passthrough:"
"\"guest\""
"\"cpu_features\""
"\"free_memory_bytes\""
"\"storage_paths\""
"&a"
"*a"
"!!str"
"---"
"\\u0000"
DICT
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
"$b/tests/fuzz/fuzz-profile" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -dict="$work/dict" -print_final_stats=1 "$work/corpus" "$work/seeds" \
    >"$work/log" 2>&1 || {
    tail -60 "$work/log"
    echo "fuzz-profile: FAILED"
    exit 1
}
grep -E '^(stat::number_of_executed_runs|stat::peak_rss_mb)|^Done' "$work/log" || true
echo "fuzz-profile: ok, ${secs}s without a crash, leak or sanitizer report"
