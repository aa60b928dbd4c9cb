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
    disk files of a destroyed guest;
  - the exit code matches the outcome.

Usage: campaign.py --runs N [--seed S] [--mem 64M] [--disk 64M|0] [--cap SECONDS]
Environment: XLML (the xl-migrate-live binary). Prints one line per run and a
JSON summary (faults by phase, outcomes, violations); exit 1 on any violation.
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
import time

XLML = os.environ.get("XLML")
HERE = os.path.dirname(os.path.abspath(__file__))
LOCAL_SSH = os.path.join(HERE, "local-ssh")

SRC_POINTS = ["src-handshake", "wire-corrupt@5", "wire-corrupt@6", "wire-corrupt@10", "src-round@0", "src-round@1", "src-round@2", "src-stopcopy", "src-ready",
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
WIRE_ACTION = "corrupt"  # the wire points' only action
DISK_ACTIONS = ACTIONS + ["fill"]  # fill: the destination's disk is full there


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


class Campaign:
    def __init__(self, mem, disk, planted):
        self.mem = mem
        self.disk = disk
        self.planted = planted
        self.dir = tempfile.mkdtemp(prefix="campaign.")
        self.a = os.path.join(self.dir, "a")
        self.b = os.path.join(self.dir, "b")
        os.makedirs(self.a)
        os.makedirs(self.b)
        self.key = os.path.join(self.dir, "key")
        with open(self.key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(self.key, 0o600)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = open(os.path.join(self.dir, "hosts.log"), "w")
        self.hosts = {}
        self.start_host("a")
        self.start_host("b")

    def start_host(self, which):
        d = self.a if which == "a" else self.b
        args = [XLML, "--dir", d, "--state-dir", d]
        if which == "b":
            args += ["--listen", "tcp:127.0.0.1:%d" % self.port, "--psk", self.key]
        env = dict(os.environ)
        env.pop("MIG_FAULT", None)
        if self.planted:  # the disk's mirror lives in the host
            env["MIG_PLANTED_BUG"] = self.planted
        self.hosts[which] = subprocess.Popen(args + ["simhost"], stderr=self.log, env=env)
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
        kind = rng.choice(["src", "dst", "dst", "sigint", "kill", "none"])
        transport = "ssh" if kind == "dst" else rng.choice(["ssh", "tcp"])
        fault = None
        if kind == "src":
            p = rng.choice(SRC_POINTS)
            fault = "%s=%s" % (p, WIRE_ACTION if p.startswith("wire-") else rng.choice(ACTIONS))
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
        t0 = time.time()
        p = subprocess.Popen(args + ["--json", "sim:" + name, dest], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
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
        report = None
        for line in out.splitlines():
            if line.startswith("{"):
                o = json.loads(line)
                if o.get("event") == "report":
                    report = o
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
        for d in (self.a, self.b):
            if os.path.exists(os.path.join(d, "disks", name)):
                violations.append("disk files of %s left behind in %s: %s" %
                                  (name, d, os.listdir(os.path.join(d, "disks", name))))
                shutil.rmtree(os.path.join(d, "disks", name), ignore_errors=True)
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
                "resolved": resolved, "runs_on": where, "seconds": round(time.time() - t0, 2),
                "violations": violations}

    def close(self):
        for p in self.hosts.values():
            p.send_signal(signal.SIGTERM)
        for p in self.hosts.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mem", default="64M")
    ap.add_argument("--disk", default="64M", help="managed disk per guest (0: none)")
    ap.add_argument("--cap", type=float, default=0, help="stop after this many seconds (0: none)")
    ap.add_argument("--planted", default=None, help="plant a deliberate bug (self-test)")
    a = ap.parse_args()
    if not XLML:
        raise SystemExit("campaign: set XLML to the xl-migrate-live binary")
    os.environ["XLML"] = XLML
    c = Campaign(a.mem, a.disk, a.planted)
    results = []
    t0 = time.time()
    try:
        for i in range(a.runs):
            rng = random.Random(a.seed * 1000003 + i)
            r = c.run(i, rng, a.planted)
            r["seed"] = a.seed * 1000003 + i
            results.append(r)
            print("run %d seed %d: %-28s %s exit %s%s -> %s%s" %
                  (i, r["seed"], r["fault"], r["transport"], r["exit"],
                   " resolve:%s" % r["resolved"] if r["resolved"] else "", r["runs_on"],
                   "  VIOLATION: " + "; ".join(r["violations"]) if r["violations"] else ""),
                  flush=True)
            if a.cap and time.time() - t0 > a.cap:
                print("campaign: time cap of %.0f s reached after %d runs" % (a.cap, i + 1))
                break
    finally:
        c.close()
    by_point, outcomes = {}, {}
    for r in results:
        point = r["fault"].split("=")[0]
        by_point[point] = by_point.get(point, 0) + 1
        outcomes[r["runs_on"]] = outcomes.get(r["runs_on"], 0) + 1
    bad = [r for r in results if r["violations"]]
    print(json.dumps({"runs": len(results), "seed": a.seed, "violations": len(bad),
                      "violating_seeds": [r["seed"] for r in bad], "faults_by_point": by_point,
                      "runs_on": outcomes, "seconds": round(time.time() - t0, 1)}))
    print("campaign: %d passed, %d failed" % (len(results) - len(bad), len(bad)))
    sys.exit(1 if bad or len(results) < a.runs and not a.cap else 0)


if __name__ == "__main__":
    main()
