#!/bin/bash
# The link lost after COMMIT: the source stays paused and reports in doubt
# (exit 5); 'resolve' asks the destination and settles it either way.
. "$(dirname "$0")/lib.sh"
start_host a
# committed on the destination, acknowledgement lost
MIG_FAULT="dest-commit-done=drop" start_host b --listen
create_guest a g 128M "dirty=40M"
migrate a g b
[ "$MIG_RC" -eq 5 ] || fail "expected in doubt (5), got $MIG_RC"
[ "$(guest_field a g--migratedaway state)" = suspended ] ||
    fail "source not paused (as g--migratedaway, like xl) while in doubt"
guest_exists a g && fail "the source kept its name after COMMIT was sent"
"$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" --psk "$T/key" resolve sim:g >"$T/resolve.out" 2>&1 ||
    fail "resolve failed: $(cat "$T/resolve.out")"
grep -q committed "$T/resolve.out" || fail "resolve did not find the commit: $(cat "$T/resolve.out")"
assert_absent a g
wait_verified b g

# COMMIT never applied: the destination discards, resolve resumes the source
MIG_FAULT="dest-commit-recv=drop" start_host c --listen
create_guest a h 128M "dirty=40M"
migrate a h c
[ "$MIG_RC" -eq 5 ] || fail "expected in doubt (5), got $MIG_RC"
"$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" --psk "$T/key" resolve sim:h >"$T/resolve.out" 2>&1 ||
    fail "resolve failed: $(cat "$T/resolve.out")"
grep -q discarded "$T/resolve.out" || fail "resolve: $(cat "$T/resolve.out")"
assert_running_on a h
assert_absent c h
# a second resolve finds nothing to do
if "$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" resolve sim:h >/dev/null 2>&1; then
    fail "resolve of a settled domain succeeded"
fi
