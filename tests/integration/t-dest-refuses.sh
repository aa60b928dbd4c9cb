#!/bin/bash
# A destination that cannot hold the guest refuses it before allocating it,
# and says why; the source keeps running.
. "$(dirname "$0")/lib.sh"
start_host a
start_host b --listen
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
big_g=$(( avail_kb / 1024 / 1024 + 8 ))   # GiB: more than the destination has
# a sparse guest: its memory is mostly never written, so the source holds it
create_guest a big "${big_g}G" "dirty=1M,touch=1"
migrate a big b
[ "$MIG_RC" -eq 1 ] || fail "expected exit 1, got $MIG_RC"
grep -q "cannot create the incoming domain" "$T/migrate.out" ||
    fail "the reason does not say why: $(grep reason "$T/migrate.out")"
assert_running_on a big
assert_absent b big
echo "refused: $(grep reason "$T/migrate.out" | tr -s ' ')"
