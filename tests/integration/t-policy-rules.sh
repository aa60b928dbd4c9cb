#!/bin/bash
# The other rules between real test-guest hosts: a failing health command
# empties its host (avoid), consolidation packs the guests and runs the hook
# for the hosts left empty, and balance leaves alone what the previous run
# moved (hysteresis, read from the state dir).
. "$(dirname "$0")/lib.sh"
M=$((1024 * 1024))
for h in a b c; do
    start_host $h --listen
    printf '{"backend":"sim","mem_total_bytes":%d,"cpus":4}\n' $((512 * M)) >"$(host_dir $h)/facts.json"
done
create_guest a x1 64M "dirty=5M"
create_guest b y1 64M "dirty=5M"
create_guest c z1 64M "dirty=5M"
P=$T/policy.yaml
{
    echo "profile: sim-test"
    echo "hosts:"
    for h in a b c; do
        d=$(host_dir $h)
        health=true
        [ $h = b ] && health=false
        echo "  - name: $h"
        echo "    uri: '$(dest_uri $h)'"
        echo "    exec: ['$XLML', --host, '$d', --state-dir, '$d', --psk, '$T/key']"
        echo "    health: [$health]"
    done
    echo "rules:"
    echo "  balance: {threshold: 10%}"
    echo "  consolidate:"
    echo "    cpu_headroom: 20%"
    echo "    hook: [sh, -c, 'echo \"\$0\" >>$T/hook.out']"
} >"$P"
pol() { "$XLML" --policy-file "$P" --state-dir "$T/ps" "$@"; }

# avoid: b's health command fails
pol --json policy check >"$T/check.out" 2>"$T/check.log" || fail "check: $(cat "$T/check.log")"
[ "$(grep -c '"event":"policy-health"' "$T/check.out")" -eq 3 ] || fail "health lines: $(cat "$T/check.out")"
grep -q '"host":"b","exit_code":1,"healthy":false' "$T/check.out" || fail "b healthy? $(cat "$T/check.out")"
grep '"event":"policy-move"' "$T/check.out" | grep -q '"rule":"avoid","domain":"y1","from":"b","to":"a".*"status":"done"' ||
    fail "y1 not moved off b: $(cat "$T/check.out")"
assert_absent b y1
wait_verified a y1

# consolidate: c's single guest joins a (best fit among hosts that keep running); hook for b and c
pol --json policy consolidate >"$T/cons.out" 2>"$T/cons.log" || fail "consolidate: $(cat "$T/cons.log")"
grep -q '"empty_hosts":\["b","c"\]' "$T/cons.out" || fail "empty hosts: $(cat "$T/cons.out")"
assert_absent c z1
wait_verified a z1
[ "$(sort "$T/hook.out" | tr '\n' ' ')" = "b c " ] || fail "hook ran for: $(cat "$T/hook.out" 2>/dev/null)"
grep -q '"event":"policy-hook","host":"c","exit_code":0' "$T/cons.out" || fail "hook lines: $(cat "$T/cons.out")"

# balance: a holds everything; z1 was moved by the previous run and stays
pol --json --dry-run policy balance >"$T/bal.out" 2>"$T/bal.log" || fail "balance: $(cat "$T/bal.log")"
grep -q '"moves":\[{' "$T/bal.out" || fail "balance planned nothing: $(cat "$T/bal.out")"
if grep -q '"domain":"z1"' "$T/bal.out"; then fail "balance undid the previous run: $(cat "$T/bal.out")"; fi
echo "avoid, consolidate (with hook) and balance hysteresis between live hosts"
