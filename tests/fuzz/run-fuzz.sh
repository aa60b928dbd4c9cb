#!/bin/sh
# run-fuzz.sh BUILDDIR [SECONDS]: build the libFuzzer target (make fuzz),
# generate the seed corpus, and fuzz the record decoder and the handshake for
# a bounded time. Fails on any crash, leak or sanitizer report.
set -eu
b=$(cd "$1" && pwd)
secs=${2:-60}
make -C "$b" -s fuzz
work=$(mktemp -d /tmp/mig-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds"
"$b/tests/fuzz/gen-seeds" "$work/seeds"
echo "seeds: $(ls "$work/seeds" | wc -l) files"
cd "$work"
# One worker (the machine is shared); RSS bounded; every report is fatal.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
"$b/tests/fuzz/fuzz-stream" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 "$work/corpus" "$work/seeds" >"$work/log" 2>&1 || {
    tail -60 "$work/log"
    echo "fuzz: FAILED"
    exit 1
}
grep -E '^(stat::number_of_executed_runs|stat::peak_rss_mb)|^Done' "$work/log" || true
echo "fuzz: ok, ${secs}s without a crash, leak or sanitizer report"
