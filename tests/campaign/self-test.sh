#!/bin/bash
# The campaign must not pass vacuously: with each deliberate bug planted
# (test builds, docs/fault-injection.md) it must report violations, and the
# check that catches it must be the one meant to.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${XLML:?XLML not set}"
pass=0
failn=0
check() { # BUG EXPECTED-TEXT
    local out
    out=$(python3 "$here/campaign.py" --runs "${SELFTEST_RUNS:-8}" --seed 3 --planted "$1" 2>&1)
    if echo "$out" | grep -q '"violations": [1-9]' && echo "$out" | grep -q "$2"; then
        echo "PASS: planted '$1' caught ($(echo "$out" | grep -c VIOLATION) runs flagged: $2)"
        pass=$((pass + 1))
    else
        echo "FAIL: planted '$1' not caught by '$2':"
        echo "$out" | tail -5
        failn=$((failn + 1))
    fi
}
check commit "two copies run"
check final-round "fails its memory check"
check tempfile "journal left behind"
check blk-forward "disk differs from the last acknowledged write"

# A full destination disk: host b's tmpfs filled early in the copy ('fill',
# within 10 ms of the target's creation, so the receiver surely hits it),
# or too small from the start ('small': refused by the pre-flight). Every
# run must keep its invariants; the summary counts the real ENOSPCs.
out=$(python3 "$here/campaign.py" --runs 8 --seed 3 --kinds fill,fill,fill,small --fill-max-ms 10 2>&1)
if echo "$out" | grep -q '"violations": 0' && echo "$out" | grep -q '"small": [1-9]' &&
    echo "$out" | grep -q '"enospc_failed": [1-9]'; then
    echo "PASS: full destination disk: $(echo "$out" | grep -o '"fill": {[^}]*}')"
    pass=$((pass + 1))
else
    echo "FAIL: full destination disk:"
    echo "$out" | grep -E 'VIOLATION|^\{' | tail -5
    failn=$((failn + 1))
fi

# Interrupted (SIGTERM, then SIGINT): the runner stops its hosts, guests and
# receivers, unmounts its tmpfs and removes its directory, then says so.
for sig in TERM INT; do
    log=$(mktemp)
    python3 "$here/campaign.py" --runs 50 --seed 5 >"$log" 2>&1 &
    runner=$!
    for _ in $(seq 100); do grep -q '^run 1 ' "$log" && break; sleep 0.2; done
    dir=$(sed -n 's/^campaign: working in //p' "$log")
    kill -"$sig" "$runner"
    wait "$runner"
    rc=$?
    left=$( (pgrep -f "$dir" || true; grep -F "$dir" /proc/mounts || true; ls -d "$dir" 2>/dev/null || true) )
    if [ -n "$dir" ] && [ "$rc" -eq 130 ] && [ -z "$left" ] && grep -q '"leftovers": \[\]' "$log"; then
        echo "PASS: SIG$sig on the runner: exit 130, nothing left of $dir"
        pass=$((pass + 1))
    else
        echo "FAIL: SIG$sig on the runner (exit $rc, dir '$dir'): left: $left"
        tail -3 "$log"
        failn=$((failn + 1))
    fi
    rm -f "$log"
done
echo "campaign self-test: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
