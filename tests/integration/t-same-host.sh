#!/bin/bash
# A move to the host the domain is on (xl migrate DOMAIN localhost, an
# admin's first try): one name space for both copies, so the source gives
# its name up (NAME--migratedaway) before COMMIT, as xl does, and the
# arriving copy takes it. Exactly one copy, verified, under the old name.
# tracking: irrelevant (naming at COMMIT; dirty tracking is covered by t-patterns)
. "$(dirname "$0")/lib.sh"
start_host a --listen
create_guest a self 128M "dirty=20M"
migrate a self a
[ "$MIG_RC" -eq 0 ] || fail "same-host move: exit $MIG_RC: $(tail -3 "$T/migrate.log")"
wait_verified a self
n=$("$XLML" --host "$(host_dir a)" --json sim list | python3 -c "import sys,json; print(len(json.load(sys.stdin)))")
[ "$n" -eq 1 ] || fail "expected one guest on the host, found $n: $("$XLML" --host "$(host_dir a)" sim list)"
echo "t-same-host: ok"
