#!/usr/bin/env python3
"""Merge the JSON summary lines of campaign shards (campaign.py --start I
--runs N, one log each) into one summary line, as one campaign would print.
Usage: merge.py SHARD.log...   Exit 1 if any shard had violations."""
import json
import sys


def main():
    total = None
    for path in sys.argv[1:]:
        with open(path) as f:
            s = [json.loads(line) for line in f if line.startswith('{"runs"')][-1]
        if total is None:
            total = dict(s, shards=1)
            continue
        total["shards"] += 1
        for k, v in s.items():
            if isinstance(v, bool) or k in ("seed",):
                continue
            if k == "start":
                total[k] = min(total[k], v)
            elif isinstance(v, (int, float)) and k != "seconds":
                total[k] += v
            elif k == "seconds":  # shards run side by side: the longest
                total[k] = max(total[k], v)
            elif isinstance(v, list):
                total[k] = total[k] + v
            elif isinstance(v, dict):
                for kk, vv in v.items():
                    total[k][kk] = total[k].get(kk, 0) + vv
            elif v is not None:
                total[k] = v
    if total is None:
        raise SystemExit("merge.py: no summary line found")
    for k in ("faults_by_phase", "faults_by_point", "runs_on", "exit_codes"):
        total[k] = dict(sorted(total[k].items(), key=lambda kv: -kv[1]))
    print(json.dumps(total))
    sys.exit(1 if total["violations"] else 0)


if __name__ == "__main__":
    main()
