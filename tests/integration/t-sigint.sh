#!/bin/bash
# Ctrl-C (SIGINT) during round 0, a later round and stop-and-copy: the
# command exits "cancelled" (4), the source keeps running, and a clean
# migration afterwards verifies its memory.
. "$(dirname "$0")/lib.sh"
start_host a
start_host b --listen
start_host good --listen

# wait_json STATUS_REGEX MIN_ROUND: until the --json stream shows it
wait_json() {
    for _ in $(seq 200); do
        if python3 - "$T/migrate.out" "$1" "$2" <<'PY'
import json, re, sys
ok = False
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if re.fullmatch(sys.argv[2], o["status"]) and o["round"] >= int(sys.argv[3]):
        ok = True
sys.exit(0 if ok else 1)
PY
        then return 0; fi
        sleep 0.05
    done
    fail "never saw status $1 round >= $2: $(tail -2 "$T/migrate.out")"
}

cancel_at() { # NAME STATUS MIN_ROUND [migrate options...]
    local name=$1 status=$2 round=$3
    shift 3
    : >"$T/migrate.out"
    "$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" --psk "$T/key" --json "$@" \
        "sim:$name" "$(dest_uri b)" >"$T/migrate.out" 2>"$T/migrate.log" &
    local pid=$!
    wait_json "$status" "$round"
    kill -INT "$pid"
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 4 ] || fail "cancel in $status: exit $rc, expected 4"
    tail -1 "$T/migrate.out" | grep -q '"status":"cancelled"' || fail "no cancelled report"
    assert_running_on a "$name"
    assert_absent b "$name"
    echo "cancelled in $status (round >= $round): source running"
}

# round 0: memory written flat out first, then a slow link
create_guest a g 256M "dirty=max,pattern=sequential"
sleep 1
cancel_at g precopy 0 --bandwidth 20M
# a later round: the guest outruns the link, no throttling
cancel_at g precopy 2 --bandwidth 100M --no-throttle
# stop-and-copy, held open by a stall
MIG_FAULT=src-stopcopy=stall:2 cancel_at g stop-and-copy 0 --downtime 100000
migrate a g good
[ "$MIG_RC" -eq 0 ] || fail "final migration: exit $MIG_RC"
wait_verified good g
