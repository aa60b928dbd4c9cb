#!/bin/sh
# run-fuzz-xen-stream.sh BUILDDIR [SECONDS]: build the Xen stream parser's
# libFuzzer target (make fuzz-xen-stream) and fuzz it for a bounded time
# with a dictionary of the stream's magic values. Fails on any crash, leak
# or sanitizer report.
set -eu
b=$(cd "$1" && pwd)
secs=${2:-60}
make -C "$b" -s fuzz-xen-stream
work=$(mktemp -d /tmp/mig-fuzz-xs-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cat >"$work/dict" <<'DICT'
"LibxlFmt"
"\xff\xff\xff\xff\xff\xff\xff\xffXENF\x00\x00\x00\x03"
"\x02\x00\x00\x00\x0c\x00\x00\x00"
"\x10\x00\x00\x00\x00\x00\x00\x00"
"\x01\x00\x00\x00\x00\x00\x00\x00"
"\x00\x00\x00\x00\x00\x00\x00\x00"
"Xen saved domain, xl format\x0a \x00 \x0d"
"\x04\x03\x02\x01"
"\x01\x00\x4c\x4d"
"\x02\x00\x4c\x4d"
DICT
cd "$work"
"$b/tests/fuzz/fuzz-xen-stream" -dict="$work/dict" -max_total_time="$secs" -max_len=65536 \
    -rss_limit_mb=2048 "$work/corpus"
