#!/bin/bash
# A destination that cannot hold the guest: the pre-flight refuses the move
# before any page (exit 3, naming the shortfall); and should the facts lie
# (a source claiming a small guest), the destination itself refuses before
# allocating it. Either way the source keeps running.
. "$(dirname "$0")/lib.sh"
start_host a
start_host b --listen
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
big_g=$(( avail_kb / 1024 / 1024 + 8 ))   # GiB: more than the destination has
# a sparse guest: its memory is mostly never written, so the source holds it
create_guest a big "${big_g}G" "dirty=1M,touch=1"
migrate a big b
[ "$MIG_RC" -eq 3 ] || fail "pre-flight: expected exit 3, got $MIG_RC"
grep -q "the guest needs .* MiB, the destination has .* MiB free" "$T/migrate.out" ||
    fail "the reason does not say why: $(grep -A2 reason "$T/migrate.out")"
assert_running_on a big
assert_absent b big
echo "pre-flight: $(grep -o 'the guest needs.*free' "$T/migrate.out" | head -1)"

# the source's facts understate the guest: the destination's own check holds
echo '{"name":"big","mem_bytes":1048576,"max_mem_bytes":1048576,"vcpus":1,"cpu_features":[]}' \
    >"$(host_dir a)/guest-big.json"
migrate a big b
[ "$MIG_RC" -eq 1 ] || fail "expected exit 1, got $MIG_RC"
grep -q "cannot create the incoming domain" "$T/migrate.out" ||
    fail "the reason does not say why: $(grep reason "$T/migrate.out")"
assert_running_on a big
assert_absent b big
echo "destination: $(grep reason "$T/migrate.out" | tr -s ' ')"
