#!/bin/bash
# The command as an admin meets it: golden --help, --dry-run and usage
# errors (exit 2, one line plus a hint), the config file, --json validated
# against docs/json-output.schema.json on a real migration between test-guest
# hosts, and the xl dispatch wrapper with a fake xl on PATH.
set -u
src=${top_srcdir:?}
bld=${top_builddir:?}
X=$bld/xl-plugin/xl-migrate-live
G=$src/tests/golden
export XL_MIGRATE_LIVE_CONFIG=/dev/null
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait; rm -rf "$T"' EXIT
pass=0
failn=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; failn=$((failn + 1)); }

golden() { # NAME CMD...: stdout must equal tests/golden/NAME
    local name=$1
    shift
    if "$@" >"$T/out" 2>&1 && diff -u "$G/$name" "$T/out" >"$T/diff"; then
        ok "golden $name"
    else
        bad "golden $name"
        cat "$T/diff"
    fi
}
golden help.txt "$X" --help
golden dry-run-default.txt "$X" --dry-run web01 host2
golden dry-run-options.txt "$X" --dry-run --transport tls --parallel 4 --bandwidth 1Gbit \
    --compress zstd --policy xl --timeout 600 --on-timeout switchover --no-throttle \
    --state-dir /srv/ml xen:web01 host2
# the network handoff: every command both hosts would run, in order
golden net-plan.txt "$X" net plan web01 'mac=02:00:00:00:02:10,bridge=xenbr0,vifname=vif3.0,ip=10.2.0.10' \
    02:00:00:00:02:11/vif3.1/xenbr1 --net uplink=eth1 --net rounds=3
golden net-cleanup.txt "$X" --dry-run net cleanup web01
golden net-announce.txt "$X" --dry-run --net rounds=2 net announce vif3.0 02:00:00:00:02:10 10.2.0.10

usage() { # EXPECTED-MESSAGE ARGS...: exit 2, exactly two lines on stderr
    local want=$1
    shift
    local rc=0
    "$X" "$@" >"$T/out" 2>"$T/err" || rc=$?
    if [ "$rc" -eq 2 ] && [ "$(head -1 "$T/err")" = "xl-migrate-live: $want" ] &&
        [ "$(sed -n 2p "$T/err")" = "Try 'xl-migrate-live --help' for more information." ] &&
        [ "$(wc -l <"$T/err")" -eq 2 ] && [ ! -s "$T/out" ]; then
        ok "usage: $*"
    else
        bad "usage: $* (exit $rc)"
        cat "$T/err"
    fi
}
usage "unrecognized option '--bogus'" --bogus web01 host2
usage "option '--downtime' needs a value" web01 host2 --downtime
usage "--bandwidth: 'fast' is not a rate (e.g. 500M, 1GB/s, 800Mbit)" --bandwidth fast web01 host2
usage "--bandwidth: '10Q' is not a rate (e.g. 500M, 1GB/s, 800Mbit)" --bandwidth 10Q web01 host2
usage "--mem: '12X' is not a size of at least 1M (e.g. 512M, 2G)" --host /nonexistent --mem 12X sim create g
usage "--downtime: '-5' is not a number of milliseconds" --downtime -5 web01 host2
usage "missing HOST (usage: xl-migrate-live [OPTIONS] DOMAIN HOST)" web01
usage "missing DOMAIN and HOST"
usage "--net: 'bogus' is not off=, rundir=, uplink=, settle=, rounds=, gap=, wait= or ofctl= with a value" --net bogus web01 host2
usage "net announce: bad MAC or IPv4 address" --dry-run net announce vif1.0 ff:ff:ff:ff:ff:ff
usage "--vif 'mac=02:00:00:00:00:01': want mac=M,bridge=B,vifname=V[,ip=A B]" --host /nonexistent --vif mac=02:00:00:00:00:01 sim create g
usage "--parallel 2: ssh carries one channel; use tls: for parallel channels" --parallel 2 web01 host2
usage "--compress: 'lz4' is not none or zstd" --compress lz4 web01 host2
usage "--qdisk: '/run/qmp' is not SOCKET,DEVICE[,NAME]" --qdisk /run/qmp web01 host2
usage "policy enter takes one HOST" policy enter
usage "policy status takes at most one HOST" policy status host1 host2

# the config file gives defaults; the command line wins; bad lines are named
printf 'downtime = 120\nbandwidth = 2G\n# comment\n' >"$T/ml.conf"
if XL_MIGRATE_LIVE_CONFIG=$T/ml.conf "$X" --dry-run web01 host2 | grep -q "target 120 ms" &&
    XL_MIGRATE_LIVE_CONFIG=$T/ml.conf "$X" --dry-run --downtime 50 web01 host2 | grep -q "target 50 ms"; then
    ok "config file defaults, command line wins"
else
    bad "config file"
fi
printf 'downtme = 120\n' >"$T/bad.conf"
XL_MIGRATE_LIVE_CONFIG=$T/bad.conf "$X" web01 host2 2>"$T/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q "$T/bad.conf:1: unknown setting 'downtme'" "$T/err"; then
    ok "config file error names file:line"
else
    bad "config file error (exit $rc): $(cat "$T/err")"
fi

# --json on a real migration, validated against the documented schema
# (Debian's python3-jsonschema, hence /usr/bin/python3)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/a" "$T/b"
"$X" --dir "$T/a" --state-dir "$T/a" simhost 2>"$T/a.log" &
pids+=($!)
"$X" --dir "$T/b" --state-dir "$T/b" --listen "tcp:127.0.0.1:$port" --psk "$T/key" simhost 2>"$T/b.log" &
pids+=($!)
for _ in $(seq 100); do "$X" --host "$T/b" sim list >/dev/null 2>&1 && "$X" --host "$T/a" sim list >/dev/null 2>&1 && break; sleep 0.05; done
"$X" --host "$T/a" sim create j --mem 64M --dirty 20M >/dev/null
"$X" --host "$T/a" --state-dir "$T/a" --psk "$T/key" --json sim:j "tcp:127.0.0.1:$port" >"$T/json.out" 2>"$T/json.err"
rc=$?
if [ "$rc" -eq 0 ] && /usr/bin/python3 - "$src/docs/json-output.schema.json" "$T/json.out" <<'PY'
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[2])]
assert len(lines) >= 2, "expected progress objects and a report"
for o in lines:
    jsonschema.validate(o, schema)
report = lines[-1]
assert report["event"] == "report" and report["status"] == "done", report
assert report["exit_code"] == 0 and report["error"] is None, report
assert report["running_host"] == report["destination"], report
assert report["transferred_bytes"] > 0 and report["total_bytes"] == 64 << 20, report
assert all(o["event"] == "progress" for o in lines[:-1])
PY
then
    ok "--json lines validate against the schema"
else
    bad "--json (exit $rc)"
    cat "$T/json.out" "$T/json.err" | tail -5
fi
# a failed migration's report: exit 1, error set, running_host is the source
"$X" --host "$T/a" sim create k --mem 64M >/dev/null
"$X" --host "$T/a" --state-dir "$T/a" --psk "$T/key" --json sim:k "tcp:127.0.0.1:1" >"$T/json.out" 2>/dev/null
rc=$?
if [ "$rc" -eq 1 ] && /usr/bin/python3 - "$src/docs/json-output.schema.json" "$T/json.out" <<'PY'
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
r = [json.loads(l) for l in open(sys.argv[2])][-1]
jsonschema.validate(r, schema)
assert r["status"] == "failed" and r["exit_code"] == 1 and r["error"], r
assert r["running_host"] == r["source"], r
PY
then
    ok "--json failure report"
else
    bad "--json failure report (exit $rc)"
    cat "$T/json.out"
fi

# the xl wrapper: migrate-live goes to us, everything else to the real xl untouched
mkdir -p "$T/bin"
cat >"$T/bin/fake-xl" <<'SH'
#!/bin/sh
printf 'real xl:'
for a in "$@"; do printf ' [%s]' "$a"; done
printf '\n'
exit 7
SH
chmod +x "$T/bin/fake-xl"
W=$bld/xl-plugin/xl-wrapper
out=$(XL_REAL=$T/bin/fake-xl XL_MIGRATE_LIVE=$X "$W" list -l "a b" 2>&1)
rc=$?
if [ "$rc" -eq 7 ] && [ "$out" = "real xl: [list] [-l] [a b]" ]; then
    ok "wrapper passes other commands through"
else
    bad "wrapper passthrough (exit $rc): $out"
fi
out=$(XL_REAL=$T/bin/fake-xl XL_MIGRATE_LIVE=$X "$W" -v migrate-live --dry-run web01 host2 2>&1)
if echo "$out" | grep -q "plan: live-migrate xen:web01 to ssh:host2"; then
    ok "wrapper dispatches migrate-live"
else
    bad "wrapper dispatch: $out"
fi
out=$(XL_REAL=$T/bin/fake-xl XL_MIGRATE_LIVE=$X "$W" migrate vm1 host2 2>&1)
if [ "$out" = "real xl: [migrate] [vm1] [host2]" ]; then
    ok "wrapper leaves plain 'xl migrate' alone"
else
    bad "wrapper migrate: $out"
fi

echo "cli: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
