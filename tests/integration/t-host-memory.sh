#!/bin/bash
# Hosts that own their memory (simhost --mem, as a Xen host's hypervisor
# does): incoming pages are read straight into the destination guest's
# memory (2 MiB pages), every way they can travel; a dead receiver's extent
# comes back; a host without room refuses and the source runs on.
. "$(dirname "$0")/lib.sh"
start_host a --mem 1G
start_host b --listen --mem 600M
grep -q "host memory: 1024 MiB" "$T/host-a.log" || fail "host a did not take its memory"
grep -q "host memory: 600 MiB (2 MiB pages)" "$T/host-b.log" ||
    fail "host b has no 2 MiB pages: $(grep 'host memory' "$T/host-b.log")"

# under write load, several rounds, two channels: pages placed by both
create_guest a g1 256M "dirty=60M,pattern=hotset,vcpus=2"
sleep 0.5
migrate a g1 b --parallel 2 --json
[ "$MIG_RC" -eq 0 ] || fail "placed migration: exit $MIG_RC: $(tail -3 "$T/migrate.log")"
rounds=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["round"])' "$T/migrate.out")
[ "$rounds" -ge 2 ] || fail "only $rounds round(s): no later round was placed"
wait_verified b g1
grep -q "g1: pages go straight into its memory" "$T/host-b.log" || fail "pages were not placed"
echo "g1: $rounds rounds over 2 channels, verified"

# compressed batches are not placed (decompressed, then written): same result
create_guest a g2 128M "dirty=20M,pattern=uniform"
sleep 0.3
migrate a g2 b --compress zstd
[ "$MIG_RC" -eq 0 ] || fail "zstd migration: exit $MIG_RC"
wait_verified b g2

# a receiver dying mid-copy (its pages placed): the source runs on
"$XLML" --host "$(host_dir b)" sim destroy g1 >/dev/null
"$XLML" --host "$(host_dir b)" sim destroy g2 >/dev/null
create_guest a g3 512M "dirty=30M,pattern=uniform,touch=100,prefill=1"
MIG_FAULT=dest-pages@0=exit start_host c --listen --mem 600M
migrate a g3 c
[ "$MIG_RC" -eq 1 ] || fail "dead receiver: expected exit 1, got $MIG_RC"
assert_running_on a g3
# host b's 600 MiB hold this 512 MiB guest only once g1's and g2's memory
# is back (scrubbed)
migrate a g3 b
[ "$MIG_RC" -eq 0 ] || fail "g3 to b: exit $MIG_RC: $(tail -3 "$T/migrate.log")"
wait_verified b g3

# b is full now: a guest that does not fit is refused, and keeps running
create_guest a g4 256M "dirty=10M"
migrate a g4 b
[ "$MIG_RC" -eq 1 ] || fail "full host: expected exit 1, got $MIG_RC"
grep -q "no space" "$T/migrate.out" || fail "no reason in the report: $(cat "$T/migrate.out")"
assert_running_on a g4
assert_absent b g4
grep -q "needs 256 MiB, this host has" "$T/host-b.log" || fail "the host did not say what it has"
echo "full host refused g4; g4 runs on a"
