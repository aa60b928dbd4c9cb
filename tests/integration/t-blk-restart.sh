#!/bin/bash
# t-blk-restart: the managed-disk server is killed (SIGKILL) and restarted
# during the disk's bulk copy while a qemu-io writer writes through it. The
# migration fails cleanly (exit 1, the guest still runs on the source, the
# destination's partial target removed); no acknowledged write is lost (the
# writer reconnects to the restarted export and goes on); a second migration
# then moves the disk, and the destination image equals every acknowledged
# write.
source "$(dirname "$0")/blk-lib.sh"

start_host a
start_dest b --disk-map "src.img=$T/dst.img"
create_guest a g1 64M dirty=10M
truncate -s 1G "$T/src.img"
dd if=/dev/urandom of="$T/src.img" bs=1M count=256 conv=notrunc status=none
cp --sparse=always "$T/src.img" "$T/ref.img"
disk_serve DS_A a g1 "$T/src.nbd" "$T/src.img"
writer rnd random 0 $((1 << 30)) 11
sleep 0.5

# a slow copy (256 MiB at 25 MB/s) that the restart interrupts
migrate a g1 b --bandwidth 25M &
MPID=$!
for _ in $(seq 100); do
    grep -q 'forwarding\|allocated' "$T/disk-a.log" 2>/dev/null && break
    sleep 0.1
done
sleep 2
kill -KILL "$DS_A"
wait "$DS_A" 2>/dev/null || true
disk_serve DS_A a g1 "$T/src.nbd" "$T/src.img"
wait "$MPID" || true
grep -q 'migration of .* did not complete' "$T/migrate.out" ||
    fail "the migration did not fail when its disk server died: $(cat "$T/migrate.out")"
assert_running_on a g1
[ ! -e "$T/dst.img" ] || fail "the destination left its partial target"
echo "ok the export's restart failed the migration cleanly"

sleep 1
migrate a g1 b
[ "$MIG_RC" -eq 0 ] || fail "second migration failed ($MIG_RC): $(tail -5 "$T/migrate.log")"
wait_verified b g1
disk_serve DS_B b g1 "$T/dst.nbd" "$T/dst.img"
touch "$T/stop"
wait_writer rnd
W=$(cat "$T/writer-rnd.json")
echo "writer: $W"
[ "$(json_get '["retries"]' <<<"$W")" -gt 0 ] || echo "note: no write hit the restart window"
kill -TERM "$DS_B"
wait "$DS_B" || fail "the destination's disk-serve did not exit cleanly"
[ "$(sha256sum <"$T/ref.img" | cut -c1-64)" = "$(sha256sum <"$T/dst.img" | cut -c1-64)" ] ||
    fail "destination image differs from the acknowledged writes"
echo "ok no acknowledged write lost across the restart; the disk moved afterwards"
