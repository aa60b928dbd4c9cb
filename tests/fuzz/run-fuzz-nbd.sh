#!/bin/sh
# run-fuzz-nbd.sh BUILDDIR [SECONDS]: build the NBD server's libFuzzer
# target (make fuzz-nbd), seed it with real client conversations (a
# handshake with GO, requests of every command) and fuzz for a bounded time
# with a dictionary of the protocol's magics. Fails on any crash, leak or
# sanitizer report.
set -eu
b=$(cd "$1" && pwd)
secs=${2:-60}
make -C "$b" -s fuzz-nbd
work=$(mktemp -d /tmp/mig-fuzz-nbd-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds"
python3 - "$work/seeds" <<'PY'
import struct, sys
d = sys.argv[1]
IHAVEOPT = 0x49484156454F5054
def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data
def req(t, off, ln, flags=0, payload=b""):
    return struct.pack(">IHHQQI", 0x25609513, flags, t, 1, off, ln) + payload
go = opt(7, struct.pack(">IHHH", 0, 2, 3, 1))
hs = struct.pack(">I", 3) + opt(8) + opt(10, b"\0" * 8) + opt(6, struct.pack(">IH", 0, 0)) + opt(3) + go
io = (req(1, 4096, 512, 1, b"\xab" * 512) + req(0, 4096, 512) + req(3, 0, 0) + req(4, 0, 65536)
      + req(6, 8192, 100, 2) + req(6, 0, 1) + req(0, 1 << 20, 1) + req(1, 0, 70000) + req(2, 0, 0))
seeds = {
    "hs": b"\0" + hs + io,
    "exportname": b"\0" + struct.pack(">I", 1) + opt(1) + io,
    "abort": b"\0" + struct.pack(">I", 3) + opt(3) + opt(2),
    "tx": b"\1" + io,
    "parser": b"\2" + struct.pack(">QIH", 1 << 20, 65536, 0x6d) + io,
}
for k, v in seeds.items():
    open("%s/%s" % (d, k), "wb").write(v)
PY
cat >"$work/dict" <<'DICT'
"IHAVEOPT"
"NBDMAGIC"
"\x25\x60\x95\x13"
"\x00\x00\x00\x07"
"\x00\x00\x00\x01"
"\x00\x03\xe8\x89\x04\x55\x65\xa9"
"\x00\x01\x00\x00"
"\x02\x00\x00\x00"
"\xff\xff\xff\xff"
DICT
cd "$work"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
"$b/tests/fuzz/fuzz-nbd" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=131072 -dict="$work/dict" -print_final_stats=1 "$work/corpus" "$work/seeds" \
    >"$work/log" 2>&1 || {
    tail -60 "$work/log"
    echo "fuzz-nbd: FAILED"
    exit 1
}
grep -E '^(stat::number_of_executed_runs|stat::peak_rss_mb)|^Done' "$work/log" || true
echo "fuzz-nbd: ok, ${secs}s without a crash, leak or sanitizer report"
