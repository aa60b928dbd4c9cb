#!/bin/bash
# A policy run stops at the first move in doubt (exit 5 from the move): it
# exits 5, starts nothing after it, and does not count the move as done;
# 'resolve' settles it. (Needs --enable-fault-injection, as t-indoubt.)
. "$(dirname "$0")/lib.sh"
M=$((1024 * 1024))
start_host a --listen
# committed on b, acknowledgement lost: the source stays paused, in doubt
MIG_FAULT="dest-commit-done=drop" start_host b --listen
for h in a b; do
    printf '{"backend":"sim","mem_total_bytes":%d,"cpus":4}\n' $((1024 * M)) >"$(host_dir $h)/facts.json"
done
create_guest a g1 96M "dirty=10M"
create_guest a g2 64M "dirty=10M"
P=$T/policy.yaml
{
    echo "profile: sim-test"
    echo "concurrency: 2"
    echo "hosts:"
    for h in a b; do
        d=$(host_dir $h)
        echo "  - {name: $h, uri: '$(dest_uri $h)', exec: ['$XLML', --host, '$d', --state-dir, '$d', --psk, '$T/key']}"
    done
} >"$P"
rc=0
"$XLML" --policy-file "$P" --state-dir "$T/ps" policy evacuate a >"$T/evac.out" 2>"$T/evac.log" || rc=$?
[ "$rc" -eq 5 ] || fail "expected in doubt (5), got $rc: $(cat "$T/evac.out")"
grep '"domain":"g1"' "$T/evac.out" | grep -q '"exit_code":5' || fail "g1 not in doubt: $(cat "$T/evac.out")"
grep '"domain":"g2"' "$T/evac.out" | grep -q '"status":"skipped"' || fail "g2 was not held back: $(cat "$T/evac.out")"
guest_exists a g2 || fail "g2 left a"
[ "$(guest_field a g1--migratedaway state)" = suspended ] ||
    fail "g1 not paused on a (as g1--migratedaway) while in doubt"
! grep -q g1 "$T/ps/policy/last-moves" || fail "an in-doubt move counted as done"
"$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" --psk "$T/key" resolve sim:g1 >"$T/resolve.out" 2>&1 ||
    fail "resolve: $(cat "$T/resolve.out")"
assert_absent a g1
wait_verified b g1
echo "a move in doubt stops the run with exit 5; the next move was not started"
