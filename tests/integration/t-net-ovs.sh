#!/bin/bash
# The network follows a migrated guest: two real Open vSwitch instances
# (userspace datapath, started by hand) in host namespaces hA and hB joined
# by a link, a client namespace on A, and a test guest whose network
# endpoint is a namespace; its veth is the guest's vif. The CLI migrates the
# guest between the two test-guest hosts; the engine's net hook moves and
# announces it (no step of the handoff is done here). A UDP stream (8000
# packets, 1 ms apart) runs through each move; reported per scenario:
# packets lost, the largest gap, and the time from 'port live on the new
# host' to the first packet there, with and without the handoff and with and
# without the guest's own gratuitous ARP. Asserts: with the handoff every
# packet sent after port-live + 20 ms arrives (the goal), the gap after
# port-live stays within 20 ms (60 ms, said so, when the load average is
# above the CPU count; NH_GAP_MS overrides), no flow of a migration is left after the
# settle period, and 'net cleanup' removes a stale port and is idempotent.
. "$(dirname "$0")/net-lib.sh"
net_isolate "$@"
. "$(dirname "$0")/lib.sh"
set -e
trap 'rc=$?; set +e; [ -n "${NH_KEEP:-}" ] && cp -r "$T" "$NH_KEEP"; net_cleanup; (exit $rc); cleanup' EXIT
net_need

GMAC=02:00:00:00:02:10
GIP=10.2.0.10
S=$$ # namespace names unique to this run
hA=nhA$S hB=nhB$S cli=nhc$S gst=nhg$S
for n in $hA $hB $cli $gst; do ns_add $n; done
ovs_start $hA
ovs_start $hB
for h in $hA $hB; do vsctl $h add-br xenbr0 -- set bridge xenbr0 datapath_type=netdev; done
veth $hA lnk $hB lnk
vsctl $hA add-port xenbr0 lnk -- set interface lnk ofport_request=2
vsctl $hB add-port xenbr0 lnk -- set interface lnk ofport_request=2
veth $cli c0 $hA cvif
vsctl $hA add-port xenbr0 cvif tag=10 -- set interface cvif ofport_request=1
ip -n $cli link set c0 address 02:00:00:00:02:01
ip -n $cli addr add 10.2.0.1/24 dev c0
# the client knows the guest's MAC: its traffic is unicast only, nothing it
# sends can teach a switch where the guest went
ip -n $cli neigh replace $GIP lladdr $GMAC dev c0 nud permanent
veth $gst eth0 $hA vifg
ip -n $gst link set eth0 address $GMAC
ip -n $gst addr add $GIP/24 dev eth0
# the guest's vif on A, as xl's hotplug script would plug it at create
# (bridge=xenbr0.10: VLAN 10; the client is on VLAN 10 too, the link is a
# trunk): the tag must follow the guest or nothing reaches it on B
vsctl $hA add-port xenbr0 vifg tag=10 -- set interface vifg external_ids:iface-id=web-eth0 \
    external_ids:attached-mac=$GMAC external_ids:vm-id=1234-abcd

# one test-guest host per OVS host, each in its namespace; the migrations
# below are the CLI alone (net_migrate), --net options on the source
net_start_host $hA A "$T/ovs-$hA"
net_start_host $hB B "$T/ovs-$hB"
"$XLML" --host "$T/host-A" sim create web --mem 64M --dirty 20M \
    --vif "mac=$GMAC,bridge=xenbr0.10,vifname=vifg,ip=$GIP" >/dev/null || fail "sim create"
ip netns exec $cli ping -c 2 -i 0.2 -W 1 $GIP >/dev/null 2>&1 || true # (one-way stream below)


RESULTS=$T/results.txt
: >"$RESULTS"
scenario() { # NAME FROM-NS FROM TO-NS TO HANDOFF(on|off) GARP(yes|no) [SOURCE --net OPTION]
    local name=$1 fns=$2 from=$3 tns=$4 to=$5 handoff=$6 garp=$7 net=()
    [ "$handoff" = off ] && net=(--net off=1)
    [ -n "${8:-}" ] && net+=(--net "$8")
    # a clean start: forget every learned MAC; the guest says where it is
    for h in $hA $hB; do ip netns exec $h ovs-appctl -t "$T/ovs-$h/ovs-vswitchd.ctl" fdb/flush >/dev/null; done
    ip netns exec $gst python3 "$top_srcdir/tests/integration/net-stream.py" garp eth0 $GMAC $GIP
    sleep 0.3
    ip netns exec $gst timeout 40 python3 "$top_srcdir/tests/integration/net-stream.py" recv $GIP 9100 \
        "$T/udp-$name.json" 25 &
    local rp=$!
    sleep 0.3
    ip netns exec $cli python3 "$top_srcdir/tests/integration/net-stream.py" send $GIP 9100 8000 0.001 &
    local sp=$!
    sleep 2.5
    local gp=
    if [ "$garp" = yes ]; then
        # the guest's own announcement, as Linux netfront sends one when it
        # reconnects: the moment its vif is a port with a number on the new host
        ip netns exec $gst python3 "$top_srcdir/tests/integration/net-stream.py" garp-on-port \
            "$T/ovs-$tns/db.sock" vifg eth0 $GMAC $GIP &
        gp=$!
    fi
    net_migrate $fns $from $to "$T/ovs-$fns" "${net[@]}"
    wait $sp
    wait $rp || true
    [ -z "$gp" ] || wait $gp
    local live
    live=$(grep -o "vif vifg of web plugged into xenbr0[.0-9]* at [0-9.]*" "$T/host-$to.log" | tail -1 | awk '{print $NF}')
    [ -n "$live" ] || fail "$name: no port-live time in host $to's log"
    # when each side deleted this migration's flows (wall clock, as the packets)
    local sdel= ddel=
    [ "$handoff" = on ] && sdel=$(grep -o "removed (source) from [0-9.]*" "$T/mig.log" | tail -1 | awk '{print $NF}' || true)
    [ "$handoff" = on ] && ddel=$(grep -o "removed (destination) from [0-9.]*" "$T/host-$to.log" | tail -1 | awk '{print $NF}' || true)
    python3 - "$T/udp-$name.json" "$live" "$name" "$handoff" "$garp" "${sdel:-0}" "${ddel:-0}" >>"$RESULTS" <<'PY'
import json, sys
u, live, name, handoff, garp = json.load(open(sys.argv[1])), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
sdel, ddel = float(sys.argv[6]), float(sys.argv[7])
N, IV = 8000, 0.001
p = sorted(u['pkts'])
got = {q for q, _, _ in p}
lost = N - len(got)
t0 = min(sent - q * IV for q, sent, _ in p)  # when seq 0 was due
never = max(got) < N - 1 - 50  # the stream never came back
# the outage: the longest run of lost packets, in the sender's time
best = (0, None, None)
for (q1, s1, _), (q2, s2, _) in zip(p, p[1:]):
    if q2 - q1 > 1 and s2 - s1 > best[0]:
        best = (s2 - s1, s1, s2)
if never:
    last = max(p)[1]
    best = (t0 + N * IV - last, last, None)
lost_late = [round((t0 + q * IV - live) * 1000, 1) for q in range(N) if q not in got and t0 + q * IV > live]
lost_after = sum(1 for t in lost_late if t > 20)
resume = round((best[2] - live) * 1000, 1) if best[2] else None
print(json.dumps({'scenario': name, 'handoff': handoff, 'guest_garp': garp, 'lost': lost,
                  'outage_ms': round(best[0] * 1000, 1),
                  'outage_from_port_live_ms': [round((best[1] - live) * 1000, 1), resume],
                  'resume_after_port_live_ms': resume,
                  'lost_after_live_20ms': lost_after, 'blackholed_to_end': never,
                  'src_flows_deleted_ms': round((sdel - live) * 1000, 1) if sdel else None,
                  'dst_flows_deleted_ms': round((ddel - live) * 1000, 1) if ddel else None,
                  'load': open('/proc/loadavg').read().split()[0],
                  'lost_after_live_ms': lost_late[-200:]}))
PY
    tail -1 "$RESULTS"
}

# The source's forwarding outlives the destination's flow here (settle 3 s
# on the source, 2.5 s on the destination): what the source forwards after
# the destination's flow is gone must still reach the guest through the
# destination's own switching (it did not while the source FLOODed frames
# untagged onto the trunk: every one of them was lost in that window).
scenario handoff-noGARP $hA A $hB B on no settle=3000
[ "$(our_flows $hA xenbr0)" = 0 ] || fail "flows of the migration left on A after settle: $(ofctl $hA dump-flows xenbr0)"
sleep 1 # the destination settles on its own after COMMIT (2.5 s)
[ "$(our_flows $hB xenbr0)" = 0 ] || fail "flows of the migration left on B after settle: $(ofctl $hB dump-flows xenbr0)"
# the source's port metadata followed the guest
[ "$(vsctl $hB get interface vifg external_ids:iface-id | tr -d '"')" = web-eth0 ] || fail "iface-id not copied"
[ "$(vsctl $hB get interface vifg external_ids:vm-id | tr -d '"')" = 1234-abcd ] || fail "vm-id not copied"
[ "$(vsctl $hB get port vifg tag)" = 10 ] || fail "VLAN tag not copied"
vsctl $hA list-ports xenbr0 | grep -qx vifg && fail "the old port is still on A"
scenario nohandoff-noGARP $hB B $hA A off no
scenario nohandoff-GARP $hA A $hB B off yes
scenario handoff-GARP $hB B $hA A on yes
sleep 2.5
for h in $hA $hB; do [ "$(our_flows $h xenbr0)" = 0 ] || fail "flows left on $h"; done

# a migration that fails before COMMIT (source fault after READY): the guest
# stays on A with its port, nothing of the migration is left on either
# host, and the destination's OVSDB watcher is gone
rc=0
MIG_FAULT=src-ready=error ip netns exec $hA env OVS_RUNDIR="$T/ovs-$hA" "$XLML" -v \
    --host "$T/host-A" --state-dir "$T/host-A" sim:web "unix:$T/host-B/mig.sock" \
    >"$T/fail.out" 2>"$T/fail.log" || rc=$?
[ "$rc" -eq 1 ] || fail "the failed migration exited $rc, not 1: $(tail -3 "$T/fail.log")"
grep -q "hook net attached" "$T/fail.log" || fail "no network hook in the failed migration"
"$XLML" --host "$T/host-A" sim status web >/dev/null || fail "the guest left A"
vsctl $hA list-ports xenbr0 | grep -qx vifg || fail "the guest's port left A"
vsctl $hB list-ports xenbr0 | grep -qx vifg && fail "a port for the guest on B after a failed move"
sleep 0.5
for h in $hA $hB; do [ "$(our_flows $h xenbr0)" = 0 ] || fail "flows left on $h after the abort"; done
pgrep -f "ovsdb-client monitor unix:$T/ovs-$hB/db.sock" >/dev/null && fail "B's OVSDB watcher outlived the session"
ip netns exec $cli ping -c 3 -i 0.1 -W 1 $GIP >/dev/null || fail "the guest is unreachable after the failed move"
echo "failed migration: guest and port stay on A, no flows, no watcher left"

# crash recovery: a stale port (device gone) and a flow with this domain's
# cookie; cleanup removes both, leaves the live port, and is idempotent
vsctl $hA add-port xenbr0 ghost -- set interface ghost external_ids:migrate-live-domain=web
ofctl $hA add-flow xenbr0 "cookie=$(printf '0x%x' $(( $(ofctl $hA dump-flows xenbr0 >/dev/null; echo 0) )))0,priority=1,actions=NORMAL" 2>/dev/null || true
"$XLML" --dry-run net cleanup web | grep -o 'cookie=0x[0-9a-f]*/' | head -1 | tr -d '/' | sed 's/cookie=//' >"$T/ck"
ofctl $hA add-flow xenbr0 "cookie=$(cat "$T/ck"),priority=90,dl_dst=02:00:00:00:09:09,actions=drop"
[ "$(our_flows $hA xenbr0)" = 1 ] || fail "could not plant a flow"
in_host $hA "$XLML" net cleanup web >"$T/clean1.out" || fail "net cleanup failed"
in_host $hA "$XLML" net cleanup web >"$T/clean2.out" || fail "second net cleanup failed"
[ "$(our_flows $hA xenbr0)" = 0 ] || fail "cleanup left a flow"
vsctl $hA list-ports xenbr0 | grep -qx ghost && fail "cleanup left the stale port"
vsctl $hA list-ports xenbr0 | grep -qx vifg || fail "cleanup removed the guest's live port"
grep -q "1 stale port" "$T/clean1.out" || fail "first cleanup: $(cat "$T/clean1.out")"
grep -q "0 stale port" "$T/clean2.out" || fail "second cleanup: $(cat "$T/clean2.out")"

# what one switchover step costs: forked ovs-ofctl vs our OpenFlow connection
netops=$(dirname "$XLML")/../bench/netops
if [ -x "$netops" ]; then
    in_host $hA "$netops" --quick xenbr0 cvif >"$T/netops.json" || fail "bench/netops failed"
    cat "$T/netops.json"
fi
echo "results (UDP 8000 x 1 ms through each move):"
cat "$RESULTS"
# The goal is 20 ms; on a machine busier than its cores (load average over
# the CPU count: other builds share them) Open vSwitch's own threads wait
# for a CPU, so the bound grows with the load (20 ms x load per CPU, at
# least 60) and the output says so.
limit=${NH_GAP_MS:-20}
load=$(cut -d' ' -f1 /proc/loadavg)
if [ -z "${NH_GAP_MS:-}" ] && python3 -c "import sys; sys.exit(0 if $load > $(nproc) else 1)"; then
    limit=$(python3 -c "print(max(60, round(20 * $load / $(nproc))))")
    echo "machine loaded (load $load on $(nproc) CPUs): bound $limit ms instead of the 20 ms goal"
fi
python3 - "$RESULTS" "$limit" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
limit = float(sys.argv[2])
bad = []
for r in rows:
    if r['handoff'] == 'on':
        # no loss after port-live + 20 ms whatever the load (the goal)
        late = [t for t in r['lost_after_live_ms'] if t > 20]
        if late or r['blackholed_to_end'] or r['lost_after_live_20ms']:
            bad.append(f"{r['scenario']}: {r['lost_after_live_20ms']} packets lost after port-live + 20 ms "
                       f"(at {late[:5]}... ms; flows deleted at {r['src_flows_deleted_ms']} ms on the source, "
                       f"{r['dst_flows_deleted_ms']} ms on the destination)")
        if r['resume_after_port_live_ms'] is None or r['resume_after_port_live_ms'] > limit:
            bad.append(f"{r['scenario']}: traffic resumed {r['resume_after_port_live_ms']} ms after port-live (limit {limit})")
if bad:
    print("FAIL: " + "; ".join(bad)); sys.exit(1)
print(f"handoff scenarios: traffic back within {limit} ms of port-live"
      + ("" if limit == 20 else " (loaded machine)") + ", nothing lost after port-live + 20 ms")
PY
