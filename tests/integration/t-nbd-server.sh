#!/bin/bash
# t-nbd-server: our NBD server (xl-migrate-live nbd-serve) with Debian's real
# clients: nbdinfo; qemu-io read/write (with FUA)/flush/discard/write-zeroes
# with pattern checks read back both through NBD and from the backing file;
# nbdcopy in and out and qemu-img convert in and out with checksum equality;
# sparse trims; a read-only export; TCP on loopback; a hostile client
# (nbd-malformed.py) answered with protocol errors while the server lives on.
source "$(dirname "$0")/lib.sh"

need() { # need COMMAND PACKAGE: install the client if it is missing
    command -v "$1" >/dev/null && return 0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
        fail "$2 is not installed and cannot be installed (setup.sh deps installs it)"
}
need qemu-io qemu-utils
need nbdcopy libnbd-bin
need nbdinfo libnbd-bin

IMG=$T/disk.img
SOCK=$T/nbd.sock
U="nbd+unix:///?socket=$SOCK"
SIZE=$((256 << 20))
truncate -s $SIZE "$IMG"

SRVPID=
start_server() { # start_server [OPTIONS]
    rm -f "$T/ready"
    "$XLML" -v nbd-serve --socket "$SOCK" "$@" "$IMG" >"$T/ready" 2>>"$T/server.log" &
    SRVPID=$!
    HOSTPIDS+=("$SRVPID")
    for _ in $(seq 100); do
        [ -S "$SOCK" ] && grep -q nbd "$T/ready" 2>/dev/null && return 0
        kill -0 "$SRVPID" 2>/dev/null || fail "nbd-serve exited: $(tail -3 "$T/server.log")"
        sleep 0.05
    done
    fail "nbd-serve did not start"
}
stop_server() {
    kill -TERM "$SRVPID"
    wait "$SRVPID" || fail "nbd-serve did not exit cleanly on SIGTERM"
    [ ! -e "$SOCK" ] || fail "socket $SOCK left behind"
}
alive() { kill -0 "$SRVPID" 2>/dev/null || fail "the server died: $(tail -5 "$T/server.log")"; }
qio() { # qio CMD...: qemu-io commands on the export; fails on any error
    local args=() out
    for c in "$@"; do args+=(-c "$c"); done
    out=$(qemu-io -f raw "$U" "${args[@]}" 2>&1) || fail "qemu-io $*: $out"
    if grep -qiE 'fail|error|mismatch|pattern verification' <<<"$out"; then
        fail "qemu-io $*: $out"
    fi
}
# file_bytes OFF LEN: sha256 of a range of the backing file
file_sum() { dd if="$IMG" bs=4096 skip=$(($1 / 4096)) count=$(($2 / 4096)) status=none | sha256sum | cut -c1-64; }
pattern_sum() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")" | sha256sum | cut -c1-64; }
allocated() { stat -c '%b' "$IMG"; } # 512-byte blocks

passed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }

start_server

# --- nbdinfo --------------------------------------------------------------
info=$(nbdinfo "$U") || fail "nbdinfo failed"
for want in "export-size: $SIZE" "can_flush: true" "can_fua: true" "can_trim: true" \
    "can_zero: true" "is_read_only: false" "block_size_maximum: 33554432" "newstyle-fixed"; do
    grep -q "$want" <<<"$info" || fail "nbdinfo lacks '$want': $info"
done
nbdinfo --list "$U" | grep -q 'export=""' || fail "nbdinfo --list"
[ "$(nbdinfo --size "$U")" = "$SIZE" ] || fail "nbdinfo --size"
ok "nbdinfo: size, flush, FUA, trim, zero, block sizes; --list"

# --- qemu-io: write / read / flush / discard / write-zeroes with patterns ---
qio 'write -P 0xab 0 1M' 'write -f -P 0xcd 1M 1M' 'write -P 0x5a 100000 12345' 'flush' \
    'read -P 0xab 0 100000' 'read -P 0x5a 100000 12345' 'read -P 0xab 112345 936231' \
    'read -P 0xcd 1M 1M'
[ "$(file_sum $((1 << 20)) $((1 << 20)))" = "$(pattern_sum 0xcd $((1 << 20)))" ] ||
    fail "the FUA write is not in the backing file"
ok "qemu-io write (plain and FUA) + read -P at unaligned offsets; the file holds the bytes"

qio 'write -P 0x11 8M 4M' 'flush'
before=$(allocated)
qio 'discard 8M 2M' 'read -P 0x11 10M 2M'
after=$(allocated)
[ "$after" -lt "$before" ] || fail "discard did not punch a hole ($before -> $after blocks)"
[ "$(file_sum $((8 << 20)) $((2 << 20)))" = "$(pattern_sum 0 $((2 << 20)))" ] ||
    fail "the trimmed range does not read as zeroes in the file"
ok "qemu-io discard (trim) punches a hole: $before -> $after blocks"

qio 'write -P 0x22 16M 4M' 'write -z 16M 1M' 'write -z -u 17M 1M' 'write -z -f 18M 512k' \
    'read -P 0 16M 2M' 'read -P 0 18M 512k' 'read -P 0x22 19398656 1572864'
qio 'write -z 20M 12345' 'read -P 0 20M 12345'
ok "qemu-io write-zeroes (with and without unmap, with FUA) read back as zeroes"

qio 'aio_write -P 0x33 32M 64k' 'aio_write -P 0x44 33M 64k' 'aio_flush' \
    'read -P 0x33 32M 64k' 'read -P 0x44 33M 64k'
ok "qemu-io asynchronous writes in flight together"

# --- nbdcopy and qemu-img convert, in and out ------------------------------
head -c $((64 << 20)) /dev/urandom >"$T/rand.img"
truncate -s $SIZE "$T/src.img"
dd if="$T/rand.img" of="$T/src.img" bs=1M seek=40 conv=notrunc status=none
dd if="$T/rand.img" of="$T/src.img" bs=1M seek=200 count=8 conv=notrunc status=none
srcsum=$(sha256sum <"$T/src.img" | cut -c1-64)
nbdcopy --flush "$T/src.img" "$U" || fail "nbdcopy into the export"
[ "$(sha256sum <"$IMG" | cut -c1-64)" = "$srcsum" ] || fail "nbdcopy in: checksums differ"
nbdcopy "$U" "$T/out.img" || fail "nbdcopy out of the export"
[ "$(sha256sum <"$T/out.img" | cut -c1-64)" = "$srcsum" ] || fail "nbdcopy out: checksums differ"
nbdcopy -C 1 --request-size=33554432 "$U" - | cmp - "$T/src.img" || fail "nbdcopy 32 MiB requests"
ok "nbdcopy in and out (multi-connection; and 32 MiB requests): sha256 equal"

qio 'write -z 0 256M'
qemu-img convert -n -f raw -O raw "$T/src.img" "$U" || fail "qemu-img convert into the export"
[ "$(sha256sum <"$IMG" | cut -c1-64)" = "$srcsum" ] || fail "qemu-img convert in: checksums differ"
rm -f "$T/out2.img"
qemu-img convert -f raw -O raw "$U" "$T/out2.img" || fail "qemu-img convert out of the export"
[ "$(sha256sum <"$T/out2.img" | cut -c1-64)" = "$srcsum" ] ||
    fail "qemu-img convert out: checksums differ"
qemu-img compare -f raw -F raw "$T/src.img" "$U" >/dev/null || fail "qemu-img compare"
ok "qemu-img convert in and out, qemu-img compare: identical"

# --- the hostile client ----------------------------------------------------
python3 "$top_srcdir/tests/integration/nbd-malformed.py" "$SOCK" $SIZE >"$T/malformed.out" 2>&1 ||
    fail "nbd-malformed.py: $(tail -5 "$T/malformed.out")"
alive
grep -q 'checks passed' "$T/malformed.out" || fail "nbd-malformed.py did not finish"
nbdinfo --size "$U" >/dev/null || fail "the server no longer answers after the hostile client"
grep -q 'dropped a client' "$T/server.log" || fail "protocol violations were not logged"
ok "hostile client: $(grep -c '^ok' "$T/malformed.out") checks answered with protocol errors; server alive"

stop_server
ok "SIGTERM: clean exit, socket removed"

# --- read-only, and TCP on loopback ----------------------------------------
start_server --read-only
out=$(qemu-io -f raw -r "$U" -c 'read -P 0 0 4096' 2>&1) || fail "read-only read: $out"
nbdinfo "$U" | grep -q 'is_read_only: true' || fail "read-only not advertised"
python3 - "$SOCK" <<'EOF' || fail "read-only write was not refused with EPERM"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(18)
s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 7, 6) + struct.pack(">IH", 0, 0))
buf = b""
while not buf.endswith(struct.pack(">QIII", 0x3E889045565A9, 7, 1, 0)):
    buf += s.recv(4096)
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 5, 0, 4) + b"abcd")
r = b""
while len(r) < 16:
    r += s.recv(16 - len(r))
sys.exit(0 if struct.unpack(">IIQ", r)[1] == 1 else 1)
EOF
[ "$(file_sum 0 4096)" = "$(head -c 4096 "$T/src.img" | sha256sum | cut -c1-64)" ] ||
    fail "read-only export changed the file"
stop_server
ok "--read-only: advertised, reads work, writes get EPERM, file unchanged"

# --daemon: memory locked, two connections, so no multi-conn invitation
start_server --daemon
locked=$(awk '/^VmLck/ {print $2}' /proc/"$SRVPID"/status)
[ "${locked:-0}" -ge $((64 << 10)) ] || fail "--daemon locked only ${locked:-0} kB"
nbdinfo "$U" | grep -q 'can_multi_conn: false' || fail "--daemon advertises multi-conn"
nbdcopy "$U" - | cmp - "$IMG" || fail "nbdcopy from the --daemon server"
qio 'write -P 0x77 0 1M' 'read -P 0x77 0 1M'
stop_server
ok "--daemon: ${locked} kB locked, nbdcopy and qemu-io work, no multi-conn"

"$XLML" -v nbd-serve --tcp-port 0 "$IMG" >"$T/tcp.ready" 2>>"$T/server.log" &
SRVPID=$!
HOSTPIDS+=("$SRVPID")
for _ in $(seq 100); do grep -q 'nbd://' "$T/tcp.ready" && break; sleep 0.05; done
TU=$(grep -o 'nbd://127.0.0.1:[0-9]*/' "$T/tcp.ready") || fail "no TCP address printed"
[ "$(nbdinfo --size "$TU")" = "$SIZE" ] || fail "nbdinfo over TCP"
nbdcopy "$TU" - | cmp - "$IMG" || fail "nbdcopy over TCP"
kill -TERM "$SRVPID"
wait "$SRVPID" || fail "TCP server exit"
ok "TCP on 127.0.0.1: nbdinfo, nbdcopy out identical"

echo "t-nbd-server: $passed passed, 0 failed"
