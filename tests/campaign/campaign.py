#!/usr/bin/env python3
"""The fault campaign: N migrations of test guests under write load, each
with a random fault at a random point (seeded, reproducible by seed), then
the invariants:

  - exactly one copy of the guest runs, or the tool reported "in doubt" (or
    died) and 'resolve' settles it to exactly one;
  - the running copy verifies all of its memory, and its disk (a managed
    disk written through its host's NBD export) equals the last
    acknowledged write, block by block;
  - the source copy, if it runs, is not paused, not tracked, not throttled;
  - no leftovers: no incoming guest, no journal, no receiver process, no
    disk files of a destroyed guest, nothing left on the destination's disk
    filesystem;
  - the exit code matches the outcome;
  - at the very end (also after SIGINT/SIGTERM): no process of this campaign
    (simhost, __sim-guest, disk server, receiver) and no mount is left.

Host b's disk directory (b/disks) is a small tmpfs the campaign mounts
itself, sized for one guest's disk: the fault 'fill' fills that filesystem
at a random moment of the copy (the receiver hits a real ENOSPC), the fault
'small' shrinks it below the disk's data before the migration (the
pre-flight must refuse it before round 0). Needs root (mount).

Usage: campaign.py --runs N [--seed S] [--start I] [--mem 64M] [--disk 64M|0] [--cap SECONDS]
Run i of seed S is seeded S*1000003+i: '--seed S --start i --runs 1' repeats it.
Environment: XLML (the xl-migrate-live binary). Prints one line per run and a
JSON summary (faults by phase, outcomes, violations); exit 1 on any violation.
See tests/campaign/README.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

XLML = os.environ.get("XLML")
HERE = os.path.dirname(os.path.abspath(__file__))
LOCAL_SSH = os.path.join(HERE, "local-ssh")

SRC_POINTS = ["src-handshake", "wire-corrupt@25", "wire-corrupt@6", "wire-corrupt@10",
              "src-torn-page@0", "src-torn-page@1", "src-round@0", "src-round@1", "src-round@2", "src-stopcopy", "src-ready",
              "src-commit-sent", "src-blk-final",
              # backend ops failing as a hypervisor library would
              "hv-logdirty_enable", "hv-logdirty_clean", "hv-map_pages", "hv-suspend",
              "hv-save_state"]
DST_POINTS = ["dest-handshake", "dest-setup", "dest-pages@0", "dest-pages@1", "dest-pages@2", "dest-switchover",
              "dest-ready", "dest-commit-recv", "dest-commit-op", "dest-commit-done",
              "hv-create_incoming", "hv-write_pages", "hv-load_state", "hv-ready", "hv-commit",
              # the block mirror's target: a record written, the final sync
              "dest-blk-write", "dest-blk-ready"]
ACTIONS = ["exit", "drop", "error", "stall:1"]
WIRE_ACTION = "corrupt"  # the wire points' (and src-torn-page's) only action
DISK_ACTIONS = ACTIONS + ["enospc"]  # enospc: that write fails as if the disk were full (injected)
TMPFS_SLACK = 16 << 20  # host b's tmpfs: one guest's disk plus this


class Interrupted(Exception):
    """SIGINT/SIGTERM on the runner: stop, clean up, report."""


def on_signal(signum, _frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # one cleanup, not two
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def size_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper()
    return int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)


def allocated(path):
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def our_processes(tag):
    """PIDs (not ours) whose command line names this campaign's directory."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmd:
            pids.append((int(d), cmd.strip()[:160]))
    return pids


def our_mounts(tag):
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if tag in line.split()[1]]


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


class Campaign:
    def __init__(self, mem, disk, planted, keep_log=None, kinds=None, fill_max_ms=150):
        self.keep_log = keep_log
        self.fill_max = fill_max_ms / 1000.0
        self.kinds = kinds
        self.mem = mem
        self.disk = disk
        self.planted = planted
        self.dir = tempfile.mkdtemp(prefix="campaign.")
        print("campaign: working in %s" % self.dir, file=sys.stderr, flush=True)
        self.a = os.path.join(self.dir, "a")
        self.b = os.path.join(self.dir, "b")
        os.makedirs(self.a)
        os.makedirs(self.b)
        self.hosts = {}
        self.cur = None  # the migration running now
        self.stop_filler = None
        # host b's disks on a tmpfs of its own: 'fill' fills a real filesystem
        self.bdisks = os.path.join(self.b, "disks")
        os.makedirs(self.bdisks)
        self.tmpfs_size = (size_bytes(disk) if disk != "0" else 0) + TMPFS_SLACK
        self.mounted = False
        self.mount_tmpfs(self.tmpfs_size)
        self.key = os.path.join(self.dir, "key")
        with open(self.key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(self.key, 0o600)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = open(os.path.join(self.dir, "hosts.log"), "w")
        try:
            self.start_host("a")
            self.start_host("b")
        except BaseException:
            self.close()
            raise

    def mount_tmpfs(self, size, remount=False):
        opts = "size=%dk,mode=0700" % ((size + 4095) // 4096 * 4)
        r = sh(["mount", "-t", "tmpfs", "-o", ("remount," if remount else "") + opts,
                "campaign-disks", self.bdisks])
        if r.returncode != 0:
            raise SystemExit("campaign: cannot mount a tmpfs on %s (root needed): %s" %
                             (self.bdisks, r.stderr.strip()))
        self.mounted = True

    def tmpfs_used(self):
        v = os.statvfs(self.bdisks)
        return (v.f_blocks - v.f_bfree) * v.f_frsize

    def filler(self, path, stop):
        """Fill host b's tmpfs (at a random moment of the copy): a file as
        large as its free space, so the receiver's next new block hits ENOSPC.
        Returns (sets) whether it was in place before the migration ended."""
        while not stop.is_set():
            v = os.statvfs(self.bdisks)
            free = v.f_bavail * v.f_frsize
            if free < 4096:
                return
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    os.posix_fallocate(fd, os.fstat(fd).st_size, free)
                finally:
                    os.close(fd)
            except OSError:
                pass  # the receiver took some meanwhile: again with what is left
            time.sleep(0.001)

    def start_host(self, which):
        d = self.a if which == "a" else self.b
        args = [XLML, "--dir", d, "--state-dir", d]
        if which == "b":
            args += ["--listen", "tcp:127.0.0.1:%d" % self.port, "--psk", self.key]
        env = dict(os.environ)
        env.pop("MIG_FAULT", None)
        if self.planted:  # the disk's mirror lives in the host
            env["MIG_PLANTED_BUG"] = self.planted
        self.hosts[which] = subprocess.Popen(args + ["simhost"], stderr=self.log, env=env,
                                             start_new_session=True)
        for _ in range(200):
            if sh([XLML, "--host", d, "sim", "list"]).returncode == 0:
                return
            time.sleep(0.02)
        raise SystemExit("campaign: host %s did not start" % which)

    def status(self, d, name):
        r = sh([XLML, "--host", d, "sim", "status", name])
        return json.loads(r.stdout) if r.returncode == 0 else None

    def names(self, d):
        r = sh([XLML, "--host", d, "--json", "sim", "list"])
        return [g["name"] for g in json.loads(r.stdout)] if r.returncode == 0 else []

    def migrate_args(self, transport):
        common = [XLML, "--host", self.a, "--state-dir", self.a, "--psk", self.key,
                  "--link-timeout", "3000"]
        if transport == "ssh":
            return common + ["-s", LOCAL_SSH, "--receive-args",
                             "--host %s --state-dir %s" % (self.b, self.b)], "localhost"
        return common, "tcp:127.0.0.1:%d" % self.port

    def run(self, i, rng, planted):
        name = "c%d" % i
        violations = []
        dirty = rng.choice([0, 5, 20, 40])
        pattern = rng.choice(["uniform", "hotset", "sequential"])
        cfg = "mem=%s,prefill=1,dirty=%dM,pattern=%s" % (self.mem, dirty, pattern)
        if self.disk != "0":
            cfg += ",disk=%s,diskrate=%dM" % (self.disk, rng.choice([1, 2, 4]))
        sh([XLML, "--host", self.a, "sim", "create", name, "--sim", cfg], check=True)
        # the fault: a point and an action on one side, a signal, or none
        # fill: host b's tmpfs fills up during the copy; small: it is too
        # small for the disk's data from the start (the pre-flight refuses)
        kind = rng.choice(["src", "dst", "dst", "sigint", "kill", "none", "fill"])
        if self.disk != "0" and rng.random() < 0.04:
            kind = "small"
        if self.kinds:  # --kinds: only these (same draws otherwise)
            kind = rng.choice(self.kinds)
        if kind in ("fill", "small") and self.disk == "0":
            kind = "none"
        transport = "ssh" if kind == "dst" else rng.choice(["ssh", "tcp"])
        fault = None
        if kind == "src":
            p = rng.choice(SRC_POINTS)
            fault = "%s=%s" % (p, WIRE_ACTION if p.startswith(("wire-", "src-torn-page")) else rng.choice(ACTIONS))
        elif kind == "dst":
            p = rng.choice(DST_POINTS)
            fault = "%s=%s" % (p, rng.choice(DISK_ACTIONS if "-blk-" in p else ACTIONS))
        args, dest = self.migrate_args(transport)
        env = dict(os.environ)
        env.pop("MIG_FAULT", None)
        if fault:
            env["MIG_FAULT"] = fault
        if planted:
            env["MIG_PLANTED_BUG"] = planted
        src_img = os.path.join(self.a, "disks", name, "disk0.img")
        dst_img = os.path.join(self.bdisks, name, "disk0.img")
        filler = os.path.join(self.bdisks, "filler")
        fill_delay = rng.uniform(0.0, 1.0) * self.fill_max  # the copy: 50-300 ms here
        if kind == "small":
            # the guest has written some data; host b's tmpfs holds a quarter of it
            for _ in range(300):
                if allocated(src_img) >= 256 << 10:
                    break
                time.sleep(0.01)
            self.mount_tmpfs(max(4096, allocated(src_img) // 4), remount=True)
            fault = "small"
        t0 = time.time()
        p = self.cur = subprocess.Popen(args + ["--json", "sim:" + name, dest],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, start_new_session=True)
        filled = None
        if kind == "fill":
            # a random moment of the copy: the target exists (pre-flight passed)
            stop = self.stop_filler = threading.Event()
            th = threading.Thread(target=self.filler, args=(filler, stop), daemon=True)
            while p.poll() is None and not os.path.exists(dst_img):
                time.sleep(0.002)
            t_target = time.time()
            time.sleep(fill_delay)
            filled = p.poll() is None
            th.start()
            fault = "fill"
        if kind in ("sigint", "kill"):
            time.sleep(rng.uniform(0.0, 0.6))
            p.send_signal(signal.SIGINT if kind == "sigint" else signal.SIGKILL)
            fault = kind
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            violations.append("the migration did not end within 60 s")
        rc = p.returncode
        self.cur = None
        if kind == "fill":
            filled = "%.0f/%.0f ms" % (fill_delay * 1000, (time.time() - t_target) * 1000) \
                if filled else None
            stop.set()
            th.join()
            if os.path.exists(filler):
                os.unlink(filler)
        if kind == "small":
            self.mount_tmpfs(self.tmpfs_size, remount=True)
        report = None
        for line in out.splitlines():
            if line.startswith("{"):
                o = json.loads(line)
                if o.get("event") == "report":
                    report = o
        # a real ENOSPC on host b's disk (the tool names the cause)
        enospc = "no space left" in err.lower() or "free on its filesystem" in err or \
            bool(report and report.get("error") and "space" in report["error"])
        if kind == "small":
            # refused by the pre-flight: before round 0, nothing sent
            if rc != 1 or "free on its filesystem" not in err:
                violations.append("a tmpfs too small for the disk was not refused by the "
                                  "pre-flight (exit %d): %s" % (rc, err.strip()[-200:]))
            elif report and (report.get("transferred_bytes") or report.get("disk_sent_bytes")):
                violations.append("the pre-flight refused only after sending %d memory and %d "
                                  "disk bytes" % (report.get("transferred_bytes"),
                                                  report.get("disk_sent_bytes")))
        # settle what the tool could not: in doubt, or the tool died
        resolved = None
        journal = os.path.join(self.a, "indoubt")
        mine = [n for n in os.listdir(journal) if n.startswith("sim:" + name + ",")] \
            if os.path.isdir(journal) else []
        has_journal = any(not n.endswith(".tmp") for n in mine)
        if mine and not has_journal:
            # only a journal write cut short by the kill: nothing to settle,
            # resolve says so and clears the leftover
            self_args, _ = self.migrate_args(transport)
            sh(self_args + ["resolve", "sim:" + name], timeout=60)
        if rc == 5 or (has_journal and rc not in (0, 1, 4)):
            rargs, _ = self.migrate_args(transport)
            r = sh(rargs + ["--json", "resolve", "sim:" + name], timeout=60)
            try:
                resolved = json.loads(r.stdout.strip().splitlines()[-1])["outcome"]
            except (ValueError, IndexError, KeyError):
                resolved = "error"
            if r.returncode != 0:
                violations.append("resolve failed (exit %d, %s): %s" %
                                  (r.returncode, resolved, r.stderr.strip()[-200:]))
        # where does the guest run now?
        on_a = self.status(self.a, name)
        away = self.status(self.a, name + "--migratedaway")
        if away:
            # the source gives its name up before COMMIT (as xl); after
            # resolve it must be gone or back under its name, never left
            if away["state"] == "running" and not on_a:
                on_a = away  # a running copy is a copy, whatever its name
            violations.append("source copy left renamed %s (%s)" % (away["name"], away["state"]))
        on_b = self.status(self.b, name)
        if on_b and on_b["name"] != name:
            violations.append("incoming guest %s left on the destination" % on_b["name"])
            on_b = None
        if bool(on_a) == bool(on_b):
            violations.append("%s copies run (source %s, destination %s)" %
                              ("two" if on_a else "no", on_a and on_a["state"],
                               on_b and on_b["state"]))
        where = "source" if on_a else "destination" if on_b else "nowhere"
        # the running copy verifies all of its memory
        if on_a:
            if on_a["state"] != "running":
                violations.append("source copy is %s" % on_a["state"])
            else:
                v = sh([XLML, "--host", self.a, "sim", "verify", name])
                st = json.loads(v.stdout) if v.returncode == 0 else {}
                if st.get("disk_errors"):
                    violations.append("source copy's disk differs from the last acknowledged "
                                      "write in %d blocks" % st["disk_errors"])
                elif st.get("verify") != "ok":
                    violations.append("source copy fails its memory check: %s" % v.stdout.strip())
                if st.get("tracked") or st.get("throttle_percent", 0) != 0:
                    violations.append("source copy still tracked/throttled: %s" % v.stdout.strip())
        if on_b:
            st = on_b
            for _ in range(300):
                if st and st["verify"] in ("ok", "FAILED"):
                    break
                time.sleep(0.02)
                st = self.status(self.b, name)
            if st and st.get("disk_errors"):
                violations.append("destination copy's disk differs from the last acknowledged "
                                  "write in %d blocks" % st["disk_errors"])
            elif not st or st["verify"] != "ok":
                violations.append("destination copy fails its memory check: %s" % st)
        # the exit code matches the outcome
        expect = {0: "destination", 1: "source", 4: "source"}
        if rc in expect and where != expect[rc]:
            violations.append("exit %d but the guest runs on the %s" % (rc, where))
        if rc == 5 and resolved not in ("committed", "discarded"):
            violations.append("in doubt and not settled (%s)" % resolved)
        # 86: a fault point's crash; -9 / -2: killed (SIGINT before main())
        if rc not in (0, 1, 4, 5, 86, -9, -2):
            violations.append("unexpected exit code %d: %s" % (rc, err.strip()[-300:]))
        if report and report["exit_code"] != rc and rc not in (-9, -2):
            violations.append("report says exit %d, process exited %d" % (report["exit_code"], rc))
        # no leftovers
        left = [n for n in os.listdir(journal) if n.startswith("sim:" + name + ",")] \
            if os.path.isdir(journal) else []
        if left:
            violations.append("journal left behind: %s" % left)
            for n in left:  # reported once, not again by every later run
                os.unlink(os.path.join(journal, n))
        for n in self.names(self.b):
            if n.endswith("--incoming"):
                violations.append("incoming guest %s left behind" % n)
        procs = sh(["pgrep", "-f", "receive --host %s" % self.b]).stdout.split()
        if procs:
            violations.append("receiver processes left behind: %s" % procs)
        for d in (self.a, self.b):
            sh([XLML, "--host", d, "sim", "destroy", name])
        sh([XLML, "--host", self.a, "sim", "destroy", name + "--migratedaway"])
        for d in (self.a, self.b):
            if os.path.exists(os.path.join(d, "disks", name)):
                violations.append("disk files of %s left behind in %s: %s" %
                                  (name, d, os.listdir(os.path.join(d, "disks", name))))
                shutil.rmtree(os.path.join(d, "disks", name), ignore_errors=True)
        # host b's tmpfs is empty again: no partial target, no filler
        left = [os.path.join(r, f)[len(self.bdisks) + 1:] for r, _, fs in os.walk(self.bdisks)
                for f in fs]
        if left or self.tmpfs_used() > (1 << 20):
            violations.append("host b's disk filesystem not empty after the run (%d KiB used): %s"
                              % (self.tmpfs_used() >> 10, left[:5]))
            for f in left:
                os.unlink(os.path.join(self.bdisks, f))
        leftovers = [n for d in (self.a, self.b) for n in self.names(d)]
        if leftovers:
            violations.append("guests left behind: %s" % leftovers)
            for d in (self.a, self.b):
                for n in self.names(d):
                    sh([XLML, "--host", d, "sim", "destroy", n])
        # a host that crashed with the fault (tcp runs keep host b's listener)
        for which in ("a", "b"):
            if self.hosts[which].poll() is not None:
                violations.append("host %s died" % which)
                self.start_host(which)
        return {"run": i, "fault": fault or "none", "transport": transport, "exit": rc,
                "resolved": resolved, "runs_on": where, "enospc": enospc,
                "filled_during_copy": filled,
                "error": (report or {}).get("error"), "stderr": err.strip()[-600:],
                "seconds": round(time.time() - t0, 2),
                "violations": violations}

    def close(self):
        """Stop everything this campaign started, in order, then by force;
        unmount host b's tmpfs, remove the directory. Also on an interrupt
        or a failed start. Returns what was left over (each a violation)."""
        leftovers = []
        if self.stop_filler:
            self.stop_filler.set()
        if self.cur and self.cur.poll() is None:  # interrupted mid-migration
            os.killpg(self.cur.pid, signal.SIGKILL)
            self.cur.wait()
        for p in self.hosts.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.hosts.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                leftovers.append("host pid %d did not stop on SIGTERM" % p.pid)
                p.kill()
                p.wait()
        # anything else of ours (a guest, a receiver, a disk server): a leftover
        for _ in range(50):
            procs = our_processes(self.dir)
            if not procs:
                break
            time.sleep(0.1)
        for pid, cmd in procs:
            leftovers.append("process %d left running: %s" % (pid, cmd))
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.mounted:
            for _ in range(20):
                if sh(["umount", self.bdisks]).returncode == 0:
                    self.mounted = False
                    break
                time.sleep(0.1)
            if self.mounted:
                leftovers.append("host b's tmpfs busy at the end: unmounted lazily")
                sh(["umount", "-l", self.bdisks])
                self.mounted = False
        if getattr(self, "log", None):
            self.log.close()
            if self.keep_log:
                shutil.copy(self.log.name, self.keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)
        # the very end: nothing of this campaign runs, is mounted or remains
        leftovers += ["process %d still running: %s" % p for p in our_processes(self.dir)]
        leftovers += ["still mounted: %s" % m for m in our_mounts(self.dir)]
        if os.path.exists(self.dir):
            leftovers.append("directory %s not removed" % self.dir)
        return leftovers


def phase(point):
    """The phase a fault point belongs to (the summary's faults_by_phase)."""
    p = point.split("@")[0]
    table = [("none", "none"), ("sigint", "signal"), ("kill", "signal"),
             ("small", "pre-flight (disk)"), ("fill", "copy (disk full)"),
             ("src-handshake", "handshake"), ("dest-handshake", "handshake"),
             ("dest-setup", "setup"), ("hv-create_incoming", "setup"),
             ("hv-logdirty_enable", "setup"), ("wire-corrupt", "rounds"),
             ("src-round", "rounds"), ("src-torn-page", "rounds"), ("dest-pages", "rounds"), ("hv-logdirty_clean", "rounds"),
             ("hv-map_pages", "rounds"), ("hv-write_pages", "rounds"),
             ("dest-blk-write", "rounds (disk)"),
             ("src-stopcopy", "stop-and-copy"), ("hv-suspend", "stop-and-copy"),
             ("hv-save_state", "stop-and-copy"), ("hv-load_state", "stop-and-copy"),
             ("dest-switchover", "stop-and-copy"), ("src-blk-final", "stop-and-copy (disk)"),
             ("dest-blk-ready", "stop-and-copy (disk)"), ("hv-ready", "ready"),
             ("src-ready", "ready"), ("dest-ready", "ready"), ("src-commit-sent", "commit"),
             ("dest-commit-recv", "commit"), ("dest-commit-op", "commit"),
             ("hv-commit", "commit"), ("dest-commit-done", "commit-ack")]
    return dict(table).get(p, "other")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0,
                    help="first run's index (run i is seeded SEED*1000003+i)")
    ap.add_argument("--mem", default="64M")
    ap.add_argument("--disk", default="64M", help="managed disk per guest (0: none)")
    ap.add_argument("--cap", type=float, default=0, help="stop after this many seconds (0: none)")
    ap.add_argument("--kinds", default=None,
                    help="draw only these fault kinds (src,dst,sigint,kill,none,fill,small)")
    ap.add_argument("--fill-max-ms", type=float, default=150,
                    help="fill: the filler goes in 0..this many ms after the target appears")
    ap.add_argument("--keep-log", default=None,
                    help="copy the hosts' log (both simhosts' stderr) here at the end")
    ap.add_argument("--planted", default=None, help="plant a deliberate bug (self-test)")
    a = ap.parse_args()
    if not XLML:
        raise SystemExit("campaign: set XLML to the xl-migrate-live binary")
    os.environ["XLML"] = XLML
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    results = []
    interrupted = None
    leftovers = []
    t0 = time.time()
    c = None
    try:
        c = Campaign(a.mem, a.disk, a.planted, a.keep_log,
                     a.kinds.split(",") if a.kinds else None, a.fill_max_ms)
        for i in range(a.start, a.start + a.runs):
            rng = random.Random(a.seed * 1000003 + i)
            r = c.run(i, rng, a.planted)
            r["seed"] = a.seed * 1000003 + i
            results.append(r)
            if os.environ.get("CAMPAIGN_STDERR"):  # the migration's own words
                print(r["stderr"])
            print("run %d seed %d: %-28s %s exit %s%s -> %s%s%s" %
                  (i, r["seed"], r["fault"], r["transport"], r["exit"],
                   " resolve:%s" % r["resolved"] if r["resolved"] else "", r["runs_on"] +
                   (" (%s: %s)" % ("ENOSPC" if r["enospc"] else "error", r["error"]) if r["fault"] in ("fill", "small") else ""),
                   " [filled at %s]" % r["filled_during_copy"] if r["filled_during_copy"] else "",
                   "  VIOLATION: " + "; ".join(r["violations"]) if r["violations"] else ""),
                  flush=True)
            if a.cap and time.time() - t0 > a.cap:
                print("campaign: time cap of %.0f s reached after %d runs" % (a.cap, len(results)))
                break
    except Interrupted as e:
        interrupted = str(e)
        print("campaign: interrupted by %s after %d runs: cleaning up" % (e, len(results)),
              flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup runs to its end
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if c:
            leftovers = c.close()
    for m in leftovers:
        print("campaign: LEFTOVER at the end: %s" % m)
    by_point, by_phase, outcomes, exits = {}, {}, {}, {}
    for r in results:
        point = r["fault"].split("=")[0]
        by_point[point] = by_point.get(point, 0) + 1
        ph = phase(point)
        by_phase[ph] = by_phase.get(ph, 0) + 1
        outcomes[r["runs_on"]] = outcomes.get(r["runs_on"], 0) + 1
        exits[str(r["exit"])] = exits.get(str(r["exit"]), 0) + 1
    bad = [r for r in results if r["violations"]]
    fills = [r for r in results if r["fault"] == "fill"]
    print(json.dumps({"runs": len(results), "seed": a.seed, "start": a.start,
                      "violations": len(bad) + (1 if leftovers else 0),
                      "violating_seeds": [r["seed"] for r in bad], "leftovers": leftovers,
                      "faults_by_phase": by_phase, "faults_by_point": by_point,
                      "runs_on": outcomes, "exit_codes": exits,
                      "fill": {"runs": len(fills),
                               "during_copy": sum(1 for r in fills if r["filled_during_copy"]),
                               "enospc_failed": sum(1 for r in fills if r["enospc"])},
                      "interrupted": interrupted, "seconds": round(time.time() - t0, 1)}))
    print("campaign: %d passed, %d failed%s" % (len(results) - len(bad), len(bad),
                                                "; leftovers at the end" if leftovers else ""))
    if interrupted:
        sys.exit(130)
    sys.exit(1 if bad or leftovers or len(results) < a.runs and not a.cap else 0)


if __name__ == "__main__":
    main()
