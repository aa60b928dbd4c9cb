#!/bin/bash
# 'policy evacuate' for real: three test-guest hosts describe themselves
# (facts.json: memory, CPUs, vendor; guests listed live by 'facts'), the
# planner spreads host a's guests over b and c by free memory, the moves run
# through 'xl-migrate-live --json', every guest verifies its memory on
# arrival; a second run while one holds the lock exits 6 at once.
. "$(dirname "$0")/lib.sh"
M=$((1024 * 1024))
for h in a b c; do start_host $h --listen; done
# uneven capacity: b is small and already runs a guest, c is larger
facts() { # HOST MEM_TOTAL_MIB
    printf '{"backend":"sim","hostname":"%s","mem_total_bytes":%d,"cpus":4,"cpu_vendor":"GenuineIntel","cpu_features":["sse4_2","avx2"]}\n' \
        "$1" $(($2 * M)) >"$(host_dir "$1")/facts.json"
}
facts a 1024
facts b 256
facts c 300
create_guest a g1 128M "dirty=10M"
create_guest a g2 96M "dirty=10M,vcpus=2"
create_guest a g3 64M "dirty=10M"
create_guest b resident 64M "dirty=1M"

# the facts come from the hosts themselves
"$XLML" --host "$(host_dir b)" facts >"$T/facts-b.out" || fail "facts of b"
python3 - "$T/facts-b.out" <<'PY' || fail "facts of b lack the guest list: $(cat "$T/facts-b.out")"
import json, sys
f = json.load(open(sys.argv[1]))
d = {x["name"]: x for x in f["domains"]}
assert d["resident"]["mem_bytes"] == 64 << 20 and d["resident"]["vcpus"] == 1, d
PY

S=$T/policy-state
P=$T/policy.yaml
# a's moves are slowed down so that a second run surely meets the lock
policy_file it ", --bandwidth, 100M" >"$P"
pol() { "$XLML" --policy-file "$P" --state-dir "$S" "$@"; }

# a dry run plans without touching anything
pol --dry-run policy evacuate a >"$T/plan.out" 2>"$T/plan.log" || fail "dry run: $(cat "$T/plan.log")"
grep -q "3 moves" "$T/plan.out" || fail "plan: $(cat "$T/plan.out")"
[ ! -e "$S/policy/maintenance/a" ] || fail "a dry run flagged a for maintenance"
guest_exists a g1 || fail "a dry run moved g1"

# another run holds the lock: exit 6 at once
python3 -c 'import fcntl,os,sys,time; f=open(sys.argv[1],"w"); fcntl.flock(f,fcntl.LOCK_EX); print("held",flush=True); time.sleep(30)' \
    "$S/policy/policy.lock" >"$T/holder.out" &
holder=$!
for _ in $(seq 50); do grep -q held "$T/holder.out" && break; sleep 0.1; done
rc=0
start=$(date +%s%N)
pol --json policy evacuate a >"$T/locked.out" 2>"$T/locked.log" || rc=$?
[ "$rc" -eq 6 ] || fail "locked run: exit $rc, not 6: $(cat "$T/locked.log")"
[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 3000 ] || fail "the locked run waited"
grep -q '"event":"policy-locked"' "$T/locked.out" || fail "no locked event: $(cat "$T/locked.out")"
[ ! -e "$S/policy/maintenance/a" ] || fail "a locked run flagged a"
kill $holder; wait $holder 2>/dev/null || true

# the real evacuation, with a second run started while it holds the lock
pol --json policy evacuate a >"$T/evac.out" 2>"$T/evac.log" &
evac=$!
for _ in $(seq 100); do grep -q '"event":"policy-plan"' "$T/evac.out" 2>/dev/null && break; sleep 0.05; done
rc=0
pol --json policy run >"$T/second.out" 2>"$T/second.log" || rc=$?
[ "$rc" -eq 6 ] || fail "a run during the evacuation: exit $rc, not 6 (evacuation still running: $(kill -0 $evac 2>/dev/null && echo yes || echo no))"
rc=0
wait $evac || rc=$?
[ "$rc" -eq 0 ] || fail "evacuate: exit $rc: $(cat "$T/evac.log") $(cat "$T/evac.out")"
[ "$(grep -c '"event":"policy-move"' "$T/evac.out")" -eq 3 ] || fail "not one JSON line per move: $(cat "$T/evac.out")"
[ "$(grep '"event":"policy-move"' "$T/evac.out" | grep -c '"status":"done","exit_code":0')" -eq 3 ] ||
    fail "moves: $(cat "$T/evac.out")"

# spread by free memory: g1 (128M) -> c (300M free), g2 (96M) -> b (192M free), g3 (64M) -> c
for g in g1 g2 g3; do assert_absent a $g; done
wait_verified c g1
wait_verified b g2
wait_verified c g3
guest_exists b resident || fail "the resident guest of b is gone"
[ -e "$S/policy/maintenance/a" ] || fail "a is not flagged for maintenance"
grep -q "^g2 a b maintenance$" "$S/policy/last-moves" || fail "last-moves: $(cat "$S/policy/last-moves")"

# a in maintenance takes nothing; not enough room anywhere else: impossible, nothing moved
create_guest b big 200M "dirty=1M"
rc=0
pol --json policy evacuate b >"$T/imp.out" 2>"$T/imp.log" || rc=$?
[ "$rc" -eq 7 ] || fail "an impossible evacuation: exit $rc, not 7: $(cat "$T/imp.log")"
grep -q '"status":"impossible"' "$T/imp.out" || fail "impossible: $(cat "$T/imp.out")"
guest_exists b g2 && guest_exists b big || fail "an impossible plan moved something"
pol policy restore b >/dev/null
pol policy restore a >/dev/null
[ ! -e "$S/policy/maintenance/a" ] || fail "restore left the flag"
pol --dry-run --json policy evacuate b >"$T/plan2.out" || fail "after restore a takes placements: $(cat "$T/plan2.out")"
grep -q '"to":"a"' "$T/plan2.out" || fail "a takes nothing after restore: $(cat "$T/plan2.out")"
echo "evacuated 3 guests over 2 hosts; locked runs exit 6; impossible plans exit 7"
