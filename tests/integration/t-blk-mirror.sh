#!/bin/bash
# t-blk-mirror: a guest with a 1 GiB managed disk (sparse image, 256 MiB of
# data) moves while real NBD clients (qemu-io, one connection per write, so
# they disconnect and reconnect throughout the copy) write through the
# managed-disk export: random 4 KiB writes (some FUA, flushes interleaved)
# and sequential 1 MiB writes. At COMMIT the source export refuses writes;
# the clients reconnect to the destination's export and keep writing. The
# destination image must equal the reference (every acknowledged write, in
# order), synchronous forwarding must have been entered and the bytes sent
# after the suspend must be a small fraction of the disk.
source "$(dirname "$0")/blk-lib.sh"

start_host a
start_dest b --disk-map "src.img=$T/dst.img"
create_guest a g1 64M dirty=20M

truncate -s 1G "$T/src.img"
dd if=/dev/urandom of="$T/src.img" bs=1M count=256 conv=notrunc status=none
cp --sparse=always "$T/src.img" "$T/ref.img"
disk_serve DS_A a g1 "$T/src.nbd" "$T/src.img"
nbdinfo "nbd+unix:///?socket=$T/src.nbd" | grep -q 'export-size: 1073741824' ||
    fail "nbdinfo does not see a 1 GiB export"

writer rnd random 0 $((512 << 20)) 7
writer seq seq $((512 << 20)) $((256 << 20)) 8
sleep 1
# a bandwidth limit keeps the bulk copy going for a few seconds under writes
migrate a g1 b --bandwidth 150M --json -v
[ "$MIG_RC" -eq 0 ] || fail "migration failed ($MIG_RC): $(tail -5 "$T/migrate.log")"
wait_verified b g1
assert_absent a g1

# the destination host's admin (systemd) serves the disk there now
disk_serve DS_B b g1 "$T/dst.nbd" "$T/dst.img"
touch "$T/stop"
wait_writer rnd
wait_writer seq
R=$(cat "$T/writer-rnd.json")
S=$(cat "$T/writer-seq.json")
echo "random writer: $R"
echo "sequential writer: $S"
for w in "$R" "$S"; do
    [ "$(json_get '["switched"]' <<<"$w")" = True ] || fail "a writer never reached the destination"
    [ "$(json_get '["acked"]' <<<"$w")" -gt 20 ] || fail "a writer barely wrote: $w"
done
[ "$(json_get '["flushes"]' <<<"$R")" -gt 0 ] || fail "no flush was interleaved"

kill -TERM "$DS_B"
wait "$DS_B" || fail "the destination's disk-serve did not exit cleanly"
ref=$(sha256sum <"$T/ref.img" | cut -c1-64)
dst=$(sha256sum <"$T/dst.img" | cut -c1-64)
[ "$ref" = "$dst" ] || fail "destination image differs from the last acknowledged writes"
echo "ok destination image = every acknowledged write ($dst)"

grep -q 'synchronous forwarding on' "$T/disk-a.log" || fail "forwarding was never entered"
grep 'moved:' "$T/migrate.log" || fail "no disk summary in the migration log"
rep=$(grep '"event":"report"' "$T/migrate.out") || fail "no --json report"
for k in disk_bytes disk_sent_bytes disk_forwarded_bytes disk_final_bytes disk_forwarding; do
    echo "  $k $(json_get "[\"$k\"]" <<<"$rep")"
done
[ "$(json_get '["disk_bytes"]' <<<"$rep")" -eq $((1 << 30)) ] || fail "disk_bytes is not 1 GiB"
[ "$(json_get '["disk_forwarding"]' <<<"$rep")" -eq 1 ] || fail "the report says no forwarding"
[ "$(json_get '["disk_sent_bytes"]' <<<"$rep")" -ge $((256 << 20)) ] || fail "disk data not counted"
after=$(json_get '["disk_final_bytes"]' <<<"$rep")
# a small fraction: under 1% of the 1 GiB disk
[ "$after" -lt $((1 << 30 >> 7)) ] || fail "$after bytes sent after the suspend"
echo "ok synchronous forwarding entered, $after bytes after the suspend"
