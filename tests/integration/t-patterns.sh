#!/bin/bash
# A 512 MiB guest under each write pattern migrates and verifies every page
# on the destination; the source copy is gone.
. "$(dirname "$0")/lib.sh"
start_host a
start_host b --listen
for p in uniform hotset sequential; do
    create_guest a "g-$p" 512M "dirty=100M,pattern=$p,vcpus=2"
    sleep 0.5
    migrate a "g-$p" b
    [ "$MIG_RC" -eq 0 ] || fail "pattern $p: exit $MIG_RC: $(tail -3 "$T/migrate.log")"
    wait_verified b "g-$p"
    assert_absent a "g-$p"
    echo "pattern $p: $(grep -E 'downtime|sent' "$T/migrate.out" | tr -s ' ' | tr '\n' ';')"
done
