#!/bin/bash
# t-blk-preflight: refusals before round 0 leave the source untouched:
# (1) a destination filesystem too small for the disk's data (a 32 MiB
# tmpfs for 64 MiB of data) and (2) no --disk-map for the disk on the
# destination. Each: exit 1 with a message naming the cause, not one page or
# block sent, the guest still running and writing on the source, the source
# image unchanged and writable, no target file left.
source "$(dirname "$0")/blk-lib.sh"

mkdir -p "$T/small"
mount -t tmpfs -o size=32M tmpfs "$T/small"
trap 'umount "$T/small" 2>/dev/null || true; cleanup' EXIT

start_host a
start_dest b --disk-map "src.img=$T/small/dst.img"
# host c's receiver is a plain listener with an explicit backend: no
# default --disk-dir (a test-guest host's own listener would receive the
# disk into its DIR/disks), no --disk-map
start_host c
PORT_c=$(free_port)
"$XLML" -v --state-dir "$(host_dir c)" --backend "sim:host=$(host_dir c)" --psk "$T/key" \
    listen "tcp:127.0.0.1:$PORT_c" 2>"$T/listen-c.log" &
HOSTPIDS+=($!)
for _ in $(seq 100); do
    grep -q listening "$T/listen-c.log" 2>/dev/null && break
    sleep 0.05
done
create_guest a g1 64M dirty=10M
truncate -s 128M "$T/src.img"
dd if=/dev/urandom of="$T/src.img" bs=1M count=64 conv=notrunc status=none
before=$(sha256sum <"$T/src.img" | cut -c1-64)
disk_serve DS_A a g1 "$T/src.nbd" "$T/src.img"

check_refused() { # check_refused TO PATTERN
    migrate a g1 "$1" --json
    [ "$MIG_RC" -eq 1 ] || fail "migration to $1 was not refused (exit $MIG_RC)"
    local rep
    rep=$(grep '"event":"report"' "$T/migrate.out") || fail "no report"
    json_get '["error"]' <<<"$rep" | grep -qi "$2" || fail "no '$2' in the error: $rep"
    echo "  refused: $(json_get '["error"]' <<<"$rep")"
    [ "$(json_get '["transferred_bytes"]' <<<"$rep")" -eq 0 ] ||
        fail "bytes were sent before the refusal: $rep"
    assert_running_on a g1
    [ "$(sha256sum <"$T/src.img" | cut -c1-64)" = "$before" ] || fail "the source image changed"
    qemu-io -f raw "nbd+unix:///?socket=$T/src.nbd" -c 'write -P 0x5a 0 4k' -c 'read -P 0x5a 0 4k' \
        >"$T/qio.out" 2>&1 || fail "the source export does not take writes: $(cat "$T/qio.out")"
    grep -q failed "$T/qio.out" && fail "the source export refuses writes: $(cat "$T/qio.out")"
    qemu-io -f raw "nbd+unix:///?socket=$T/src.nbd" -c "write -s $T/block0 0 4k" >/dev/null
    [ "$(sha256sum <"$T/src.img" | cut -c1-64)" = "$before" ] || fail "cannot restore block 0"
}
dd if="$T/src.img" of="$T/block0" bs=4k count=1 status=none

check_refused b "free on its filesystem"
[ ! -e "$T/small/dst.img" ] || fail "the refused target file was left on the destination"
echo "ok a destination too small is refused before round 0, source intact"

check_refused c "disk-map"
echo "ok a disk without --disk-map is refused before round 0, source intact"
