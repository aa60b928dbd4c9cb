#!/bin/bash
# tls: end to end through the CLI: a guest under write load moves over two
# TLS data channels with zstd (our AEAD records after the TLS 1.3 handshake),
# the destination verifies every page; a client with a certificate from
# another CA is refused and its guest keeps running.
# tracking: irrelevant (a transport test; dirty tracking is covered by t-patterns)
. "$(dirname "$0")/lib.sh"
sh "$top_srcdir/tests/tls/gen-certs.sh" "$T/pki" >/dev/null || fail "cannot make test certificates"
start_host a
mkdir -p "$T/host-b"
port=$(free_port)
"$XLML" -v --dir "$T/host-b" --state-dir "$T/host-b" --listen "tls:127.0.0.1:$port" \
    --pki "$T/pki/good" simhost 2>"$T/host-b.log" &
HOSTPIDS+=($!)
for _ in $(seq 100); do
    "$XLML" --host "$T/host-b" sim list >/dev/null 2>&1 && break
    sleep 0.05
done
tls_migrate() { # tls_migrate NAME PKI ARGS...
    local name=$1 pki=$2
    shift 2
    MIG_RC=0
    "$XLML" -v -v --host "$T/host-a" --state-dir "$T/host-a" --pki "$pki" "$@" "sim:$name" \
        "tls:127.0.0.1:$port" >"$T/migrate.out" 2>"$T/migrate.log" || MIG_RC=$?
}
create_guest a t1 256M "dirty=40M,pattern=hotset,vcpus=2"
tls_migrate t1 "$T/pki/good" --parallel 2 --compress zstd
[ "$MIG_RC" -eq 0 ] || fail "tls: migration: exit $MIG_RC: $(tail -5 "$T/migrate.log")"
wait_verified b t1
assert_absent a t1
grep -q "migrate-live records" "$T/migrate.log" || fail "tls: our AEAD records were not used"
grep -q "2 data channels" "$T/migrate.log" || fail "tls: not 2 data channels: $(grep "connected to" "$T/migrate.log")"

create_guest a t2 64M "dirty=10M"
tls_migrate t2 "$T/pki/evil"
[ "$MIG_RC" -ne 0 ] || fail "a client certificate from another CA was accepted"
[ "$(guest_field a t2 state)" = running ] || fail "guest t2 not running on a after the refusal"
guest_exists b t2 && fail "guest t2 appeared on b"
echo "t-tls: ok"
