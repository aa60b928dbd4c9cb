#!/bin/bash
# A disk the domain's own QEMU serves (Xen's qdisk backend) moves with the
# domain: --qdisk SOCKET,DEVICE,NAME makes that QEMU mirror it
# (blockdev-mirror, write-blocking) into our sink on the source, whose
# writes travel on the session to the destination's --disk-map target.
# A real qemu-system-x86_64 holds the image as libxl gives QEMU a qdisk disk
# (-drive ... node-name=disk0), with no guest; the test writes through it
# (HMP qemu-io) once the job is ready, as a guest would, and the target
# must then equal the image. A failure at the switchover cancels the job:
# nothing of ours is left in QEMU and the guest stays on the source.
# tracking: irrelevant (disk path; dirty tracking is covered by t-patterns)
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 qemu-system-x86
here=$(cd "$(dirname "$0")" && pwd)
img=$T/disk.img
head -c $((48 << 20)) /dev/urandom >"$img"
qemu-system-x86_64 -nodefaults -display none -machine none \
    -qmp "unix:$T/qmp1,server=on,wait=off" -qmp "unix:$T/qmp2,server=on,wait=off" \
    -drive "if=none,id=drive0,file=$img,format=raw,node-name=disk0,cache=writeback" \
    2>"$T/qemu.log" &
QPID=$!
HOSTPIDS+=($QPID)
for _ in $(seq 200); do [ -S "$T/qmp2" ] && break; sleep 0.05; done
[ -S "$T/qmp2" ] || fail "QEMU did not start: $(cat "$T/qemu.log")"

start_host a
mkdir -p "$T/host-b"
port=$(free_port)
PORT_b=$port
"$XLML" -v --dir "$T/host-b" --state-dir "$T/host-b" --listen "tcp:127.0.0.1:$port" \
    --psk "$T/key" --disk-map "data=$T/target.img" simhost 2>"$T/host-b.log" &
HOSTPIDS+=($!)
for _ in $(seq 100); do "$XLML" --host "$T/host-b" sim list >/dev/null 2>&1 && break; sleep 0.05; done

# the move, slowed down so that the test can write while the job is ready
create_guest a g 256M "prefill=1,dirty=2M"
"$XLML" -v --host "$T/host-a" --state-dir "$T/host-a" --psk "$T/key" --bandwidth 24M \
    --qdisk "$T/qmp1,disk0,data" sim:g "tcp:127.0.0.1:$port" \
    >"$T/migrate.out" 2>"$T/migrate.log" &
mpid=$!
python3 "$here/qmp-tool.py" "$T/qmp2" wait-ready mlv-mirror-0 60 ||
    fail "the mirror job never became ready: $(python3 "$here/qmp-tool.py" "$T/qmp2" jobs)"
for i in 0 1 2 3; do
    python3 "$here/qmp-tool.py" "$T/qmp2" write $((i * 7 << 20)) 65536 $((0x41 + i)) ||
        fail "write $i through QEMU failed"
done
rc=0
wait $mpid || rc=$?
[ "$rc" -eq 0 ] || fail "migration with a qdisk disk: exit $rc: $(tail -5 "$T/migrate.log")"
wait_verified b g
assert_absent a g
src=$(sha256sum <"$img" | cut -d' ' -f1)
dst=$(sha256sum <"$T/target.img" | cut -d' ' -f1)
# the writes came after the bulk copy (the job was ready): only the
# write-blocking mirror can have put them into the target
[ "$src" = "$dst" ] || fail "target differs from the image QEMU holds"
python3 "$here/qmp-tool.py" "$T/qmp2" jobs >"$T/jobs.json"
grep -q '"jobs": \[\]' "$T/jobs.json" || fail "a block job left in QEMU: $(cat "$T/jobs.json")"
grep -q mlv-mirror "$T/jobs.json" && fail "our NBD node left in QEMU: $(cat "$T/jobs.json")"
echo "moved with the guest: 48 MiB qdisk image, 4 writes while the job was ready; checksums equal"

# a failure at the switchover: the job is cancelled, the source unchanged
create_guest a h 64M "dirty=2M"
rm -f "$T/target.img"
sum_before=$(sha256sum <"$img" | cut -d' ' -f1)
rc=0
MIG_FAULT="src-blk-final=error" "$XLML" --host "$T/host-a" --state-dir "$T/host-a" --psk "$T/key" \
    --qdisk "$T/qmp1,disk0,data" sim:h "tcp:127.0.0.1:$port" >"$T/migrate2.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "expected exit 1 on the injected failure, got $rc: $(tail -3 "$T/migrate2.out")"
assert_running_on a h
assert_absent b h
python3 "$here/qmp-tool.py" "$T/qmp2" jobs >"$T/jobs.json"
grep -q '"jobs": \[\]' "$T/jobs.json" || fail "a block job left after the failure: $(cat "$T/jobs.json")"
grep -q mlv-mirror "$T/jobs.json" && fail "our NBD node left after the failure: $(cat "$T/jobs.json")"
[ "$(sha256sum <"$img" | cut -d' ' -f1)" = "$sum_before" ] || fail "the source image changed"
[ ! -e "$T/target.img" ] || fail "the failed move left its target"
ls /tmp/mlv-qdisk-* >/dev/null 2>&1 && fail "a private NBD socket dir left in /tmp"
echo "a failure at the switchover: job cancelled, nothing left in QEMU, guest on the source"
