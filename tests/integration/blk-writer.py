#!/usr/bin/env python3
"""blk-writer.py: a guest's disk writes, played by Debian's qemu-io (a real
NBD client), against a managed-disk export during a migration.

Every write goes through `qemu-io -f raw nbd+unix:///?socket=SOCK` (one
connection per operation: the client disconnects and reconnects all the
time, also during the copy). A write qemu-io reports as done is
acknowledged: it is applied to the reference image REF at once, so REF is
always "the disk after the last acknowledged write" of this writer's region.

When the source export refuses a write with ESHUTDOWN (the disk moved at
COMMIT), the writer reconnects to the destination's export (--dst, waiting
for it to appear) and retries the same write there, as a guest resumed on
the destination would. A connection that fails otherwise (the export being
restarted) is retried on the same socket.

Modes: random (4 KiB writes at random 4 KiB-aligned offsets, every 8th with
FUA, every 16th followed by a flush), seq (1 MiB writes of random data from
start to end, wrapping, a flush every 8). Stops when --stop-file exists and
at least --after-switch writes were acknowledged by the destination (or, if
--no-switch, at once). Prints a JSON summary on stdout.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time


def qio(sock, cmds):
    argv = ["qemu-io", "-f", "raw", f"nbd+unix:///?socket={sock}"]
    for c in cmds:
        argv += ["-c", c]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    ok = p.returncode == 0 and "failed" not in out and "can't open" not in out
    return ok, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst")
    ap.add_argument("--ref", required=True)
    ap.add_argument("--mode", choices=["random", "seq"], required=True)
    ap.add_argument("--start", type=int, required=True)
    ap.add_argument("--len", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--after-switch", type=int, default=10)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    sock = a.src
    switched = False
    st = {"acked": 0, "acked_dst": 0, "flushes": 0, "fua": 0, "refused": 0, "retries": 0}
    ref = open(a.ref, "r+b")
    chunk = os.path.join(a.tmp, f"chunk-{a.seed}.bin")
    seq_off = a.start
    i = 0
    while True:
        if os.path.exists(a.stop_file) and (switched or not a.dst) and \
                (st["acked_dst"] >= a.after_switch or not a.dst):
            break
        i += 1
        if a.mode == "random":
            off = a.start + rng.randrange(a.len // 4096) * 4096
            n = 4096
            data = bytes([rng.randrange(1, 256)]) * n
            fua = i % 8 == 0
            cmds = [f"write {'-f ' if fua else ''}-P {data[0]} {off} {n}"]
            if i % 16 == 0:
                cmds.append("flush")
        else:
            n = 1 << 20
            if seq_off + n > a.start + a.len:
                seq_off = a.start
            off = seq_off
            seq_off += n
            data = rng.randbytes(n)
            with open(chunk, "wb") as f:
                f.write(data)
            fua = False
            cmds = [f"write -s {chunk} {off} {n}"]
            if i % 8 == 0:
                cmds.append("flush")
        deadline = time.time() + 60
        while True:
            ok, out = qio(sock, cmds)
            if ok:
                break
            if "endpoint shutdown" in out or "ESHUTDOWN" in out:
                # the disk moved: a resumed guest writes to the destination
                st["refused"] += 1
                if not a.dst or switched:
                    sys.exit(f"write refused by {sock} and nowhere to go: {out}")
                switched = True
                sock = a.dst
                deadline = time.time() + 60
                while not os.path.exists(sock) and time.time() < deadline:
                    time.sleep(0.05)
                continue
            if "write failed" in out and "Input/output" not in out and "connect" not in out:
                sys.exit(f"write at {off} failed: {out}")
            st["retries"] += 1
            if time.time() > deadline:
                sys.exit(f"{sock} did not come back within 60 s: {out}")
            time.sleep(0.1)
        ref.seek(off)
        ref.write(data)
        st["acked"] += 1
        if switched:
            st["acked_dst"] += 1
        if fua:
            st["fua"] += 1
        if len(cmds) > 1:
            st["flushes"] += 1
    ref.close()
    st["switched"] = switched
    print(json.dumps(st))


if __name__ == "__main__":
    main()
