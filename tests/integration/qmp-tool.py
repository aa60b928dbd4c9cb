#!/usr/bin/env python3
"""qmp-tool.py SOCKET CMD...: the test's side of a QEMU holding a qdisk disk.
  wait-ready JOB SECONDS   poll query-block-jobs until JOB is ready (exit 0),
                           gone or failed (exit 1)
  write OFFSET LEN BYTE    HMP qemu-io on drive0: write -P BYTE OFFSET LEN
  jobs                     print the block jobs and the named nodes (JSON)
"""
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise SystemExit("qmp: connection closed")
            m = json.loads(line)
            if "event" not in m:
                return m

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        m = self.read()
        if "error" in m:
            raise SystemExit("qmp %s: %s" % (name, m["error"]))
        return m["return"]


def main():
    q = QMP(sys.argv[1])
    op = sys.argv[2]
    if op == "wait-ready":
        job, end = sys.argv[3], time.time() + float(sys.argv[4])
        while time.time() < end:
            jobs = {j["device"]: j for j in q.cmd("query-block-jobs")}
            j = jobs.get(job)
            if j and j.get("ready"):
                return 0
            if j and j.get("status") in ("concluded", "aborting", "null"):
                return 1
            time.sleep(0.02)
        return 1
    if op == "write":
        off, length, byte = sys.argv[3:6]
        out = q.cmd("human-monitor-command",
                    **{"command-line": 'qemu-io drive0 "write -P %s %s %s"' % (byte, off, length)})
        if "error" in out.lower() or "failed" in out.lower():
            raise SystemExit("qemu-io: " + out)
        return 0
    if op == "jobs":
        print(json.dumps({"jobs": q.cmd("query-block-jobs"),
                          "nodes": [n["node-name"] for n in q.cmd("query-named-block-nodes")]}))
        return 0
    raise SystemExit("unknown op " + op)


if __name__ == "__main__":
    sys.exit(main())
