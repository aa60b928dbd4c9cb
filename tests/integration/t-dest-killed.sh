#!/bin/bash
# A destination that dies at any phase before COMMIT leaves the source
# running, unchanged; afterwards a clean migration verifies its memory.
. "$(dirname "$0")/lib.sh"
start_host a
start_host good --listen
create_guest a g 128M "dirty=40M,pattern=hotset"
n=0
for point in dest-setup dest-pages@0 dest-pages@2 dest-switchover dest-ready; do
    n=$((n + 1))
    MIG_FAULT="$point=exit" start_host "bad$n" --listen
    # after READY: the source waits a moment before COMMIT, so the death
    # is seen first (a death after COMMIT is the in-doubt case, t-indoubt)
    MIG_FAULT=src-ready=stall:1 migrate a g "bad$n" --policy xl
    [ "$MIG_RC" -eq 1 ] || fail "$point: expected exit 1, got $MIG_RC"
    assert_running_on a g
    echo "$point: source still running ($(grep reason "$T/migrate.out" | tr -s ' '))"
done
migrate a g good
[ "$MIG_RC" -eq 0 ] || fail "final migration: exit $MIG_RC"
wait_verified good g
