#!/bin/bash
# zstd compression and two data channels each move a guest intact.
. "$(dirname "$0")/lib.sh"
start_host a
start_host b --listen
create_guest a gz 256M "dirty=50M,pattern=hotset"
migrate a gz b --compress zstd
[ "$MIG_RC" -eq 0 ] || fail "zstd: exit $MIG_RC"
wait_verified b gz
grep -q "compression" "$T/migrate.out" || fail "zstd: no compression figures in the report"
create_guest a g2 256M "dirty=50M,pattern=uniform,vcpus=2"
migrate a g2 b --parallel 2
[ "$MIG_RC" -eq 0 ] || fail "2 channels: exit $MIG_RC"
grep -q "data channels   2" "$T/migrate.out" ||
    fail "not 2 data channels: $(grep "data channels" "$T/migrate.out")"
wait_verified b g2
assert_absent a g2
