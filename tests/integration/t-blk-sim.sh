#!/bin/bash
# t-blk-sim: a test guest with a managed disk (sim create --disk 64M) whose
# workload writes 4 KiB blocks through its host's NBD export moves with its
# memory, there and back: each time the destination guest checks every
# block of its disk against the writes acknowledged before the suspend
# (verify covers memory and disk), then keeps writing to the destination's
# export; the source's disk files are gone.
source "$(dirname "$0")/blk-lib.sh"

start_dest a
start_dest b
create_guest a g1 64M dirty=10M,diskrate=4M
"$XLML" --host "$(host_dir a)" sim destroy g1
"$XLML" --host "$(host_dir a)" sim create g1 --mem 64M --sim dirty=10M,diskrate=4M --disk 64M \
    >/dev/null || fail "sim create --disk failed"
[ -S "$(host_dir a)/disks/g1/disk0.nbd" ] || fail "no NBD export for the guest's disk"
[ -S "$(host_dir a)/disks/g1/disk0.ctl" ] || fail "no control socket for the guest's disk"
nbdinfo "nbd+unix:///?socket=$(host_dir a)/disks/g1/disk0.nbd" | grep -q 'export-size: 67108864' ||
    fail "the guest's disk export is not 64 MiB"
sleep 1
w=$(guest_field a g1 disk_writes)
[ "$w" -gt 100 ] || fail "the guest barely writes its disk ($w)"

hop() { # hop FROM TO
    local w0 st
    migrate "$1" g1 "$2" --json
    [ "$MIG_RC" -eq 0 ] || fail "migration $1 -> $2 failed ($MIG_RC): $(tail -5 "$T/migrate.log")"
    wait_verified "$2" g1
    st=$("$XLML" --host "$(host_dir "$2")" sim status g1)
    echo "  $1 -> $2: $st" | cut -c1-400
    [ "$(json_get '["disk_errors"]' <<<"$st")" -eq 0 ] || fail "disk errors after the move"
    [ "$(json_get '["disk_checked"]' <<<"$st")" -eq 16384 ] || fail "not every block was checked"
    assert_absent "$1" g1
    [ ! -e "$(host_dir "$1")/disks/g1" ] || fail "the source kept the moved disk's files"
    w0=$(guest_field "$2" g1 disk_writes)
    sleep 0.5
    [ "$(guest_field "$2" g1 disk_writes)" -gt "$w0" ] || fail "the guest stopped writing its disk"
    rep=$(grep '"event":"report"' "$T/migrate.out")
    [ "$(json_get '["disk_bytes"]' <<<"$rep")" -eq $((64 << 20)) ] || fail "disk_bytes: $rep"
}
hop a b
echo "ok a -> b: memory and disk verified, the guest writes to b's export"
hop b a
echo "ok b -> a: memory and disk verified"
"$XLML" --host "$(host_dir a)" sim verify g1 >/dev/null
[ "$(guest_field a g1 disk_errors)" -eq 0 ] || fail "on-demand verify found disk errors"
echo "ok on-demand verify of memory and disk"
