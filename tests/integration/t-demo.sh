#!/bin/bash
# The README's demo, as a newcomer runs it: two test-guest hosts, a guest
# under write load, progress, the report, and the guest's own verdict.
. "$(dirname "$0")/lib.sh"
rc=0
"$XLML" demo >"$T/demo.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "demo exited $rc: $(tail -5 "$T/demo.out")"
grep -q "^done: migration of sim:demo" "$T/demo.out" || fail "no final report"
grep -q "guest's own memory check: ok" "$T/demo.out" || fail "no passing guest check"
grep -q "downtime seen by the guest" "$T/demo.out" || fail "no guest-measured downtime"
grep -q "^demo: PASS" "$T/demo.out" || fail "no PASS line"
grep -E "downtime|memory check" "$T/demo.out"
