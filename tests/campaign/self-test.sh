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
echo "campaign self-test: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
