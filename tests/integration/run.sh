#!/bin/bash
# Run every integration test (t-*.sh) with a time limit each; print one
# PASS/FAIL line per test and the totals.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${XLML:?XLML not set}"
export XLML
pass=0
failn=0
# each run keeps its tests' output apart (several trees may run at once)
out=$(mktemp -d "${TMPDIR:-/tmp}/mlit-run.XXXXXX")
trap 'rm -rf "$out"' EXIT
for t in "$here"/t-*.sh; do
    name=$(basename "$t" .sh)
    [ -n "${ONLY:-}" ] && [[ "$name" != *"$ONLY"* ]] && continue
    # The second pass with the synchronous dirty-tracking fallback only
    # re-runs tests whose outcome depends on how guest writes are tracked;
    # a test says otherwise with a "# tracking: irrelevant (why)" line.
    if [ "${MIG_SIM_TRACKING:-}" = sync ] && grep -q '^# tracking: irrelevant' "$t"; then
        echo "NOT RERUN: $name with MIG_SIM_TRACKING=sync: $(sed -n 's/^# tracking: irrelevant //p' "$t")"
        continue
    fi
    start=$(date +%s)
    if timeout -k 5 "${TEST_TIMEOUT:-300}" bash "$t" >"$out/$name.out" 2>&1; then
        echo "PASS: $name ($(($(date +%s) - start))s)"
        sed 's/^/    /' "$out/$name.out" | tail -8
        pass=$((pass + 1))
    else
        echo "FAIL: $name ($(($(date +%s) - start))s)"
        # the test's own verdict first: the log dump that follows can be long
        grep -m3 '^FAIL: ' "$out/$name.out" | sed 's/^/    /'
        sed 's/^/    /' "$out/$name.out" | tail -40
        failn=$((failn + 1))
    fi
done
echo "integration: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
