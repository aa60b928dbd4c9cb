#!/bin/bash
# Linux bridge hosts (no Open vSwitch) get the announcement. Three bridges
# in namespaces: a physical switch 'sw' (client and both hosts' uplinks on
# it) and xenbr0 on hosts hA and hB; the test guest's endpoint is a
# namespace whose veth is the vif. When the guest moves and nobody
# announces, the switch keeps sending its traffic to the old host (its MAC
# table entry lives 300 s) and the guest is cut off; with the handoff, the
# destination's RARP/GARP from its bridge teaches the switch at COMMIT.
# Nothing here moves or announces anything by hand: the CLI migrates.
. "$(dirname "$0")/net-lib.sh"
net_isolate "$@"
. "$(dirname "$0")/lib.sh"
set -e
trap 'rc=$?; set +e; net_cleanup; (exit $rc); cleanup' EXIT
net_need

GMAC=02:00:00:00:03:10
GIP=10.3.0.10
S=$$
sw=nlS$S hA=nlA$S hB=nlB$S cli=nlc$S gst=nlg$S
for n in $sw $hA $hB $cli $gst; do ns_add $n; done
for n in $sw $hA $hB; do
    ip -n $n link add xenbr0 type bridge
    ip -n $n link set xenbr0 up
done
veth $sw swA $hA uplink
veth $sw swB $hB uplink
veth $sw swc $cli c0
for p in swA swB swc; do ip -n $sw link set $p master xenbr0; done
for h in $hA $hB; do ip -n $h link set uplink master xenbr0; done
ip -n $cli link set c0 address 02:00:00:00:03:01
ip -n $cli addr add 10.3.0.1/24 dev c0
ip -n $cli neigh replace $GIP lladdr $GMAC dev c0 nud permanent
veth $gst eth0 $hA vifg
ip -n $gst link set eth0 address $GMAC
ip -n $gst addr add $GIP/24 dev eth0
ip -n $gst neigh replace 10.3.0.1 lladdr 02:00:00:00:03:01 dev eth0 nud permanent
ip -n $hA link set vifg master xenbr0 # xl's vif-bridge at create

mkdir -p "$T/no-ovs" # no OVSDB on these hosts
net_start_host $hA A "$T/no-ovs"
net_start_host $hB B "$T/no-ovs"
"$XLML" --host "$T/host-A" sim create web --mem 64M \
    --vif "mac=$GMAC,bridge=xenbr0,vifname=vifg,ip=$GIP" >/dev/null || fail "sim create"
ip netns exec $cli ping -c 3 -i 0.1 -W 1 $GIP >/dev/null || fail "no ping before any move"

replies() { # how many of 10 pings, 50 ms apart, right after the move come back
    { ip netns exec $cli ping -c 10 -i 0.05 -W 1 $GIP 2>/dev/null || true; } |
        sed -n 's/.* \([0-9]*\) received.*/\1/p'
}

# 1. without the handoff: the switch still sends to A, the guest is cut off
net_migrate $hA A B "$T/no-ovs" --net off=1
n=$(replies)
echo "no handoff, A -> B: $n/10 replies"
[ "$n" -eq 0 ] || fail "the guest answered without any announcement ($n/10): the test proves nothing"
ip -n $sw link show swB >/dev/null
# 2. with the handoff: back to A, announced from A's bridge at COMMIT
net_migrate $hB B A "$T/no-ovs"
n=$(replies)
echo "handoff, B -> A: $n/10 replies"
[ "$n" -ge 9 ] || fail "only $n/10 replies after a move with the handoff"
grep -q "announced web" "$T/host-A.log" || fail "no announcement in A's log"
# 3. and A -> B again
net_migrate $hA A B "$T/no-ovs"
n=$(replies)
echo "handoff, A -> B: $n/10 replies"
[ "$n" -ge 9 ] || fail "only $n/10 replies after a move with the handoff"
bridge -n $sw fdb show br xenbr0 | grep -i "$GMAC" | grep -q swB || fail "the switch did not learn B"
echo "Linux bridge: the announcement moves the switch's MAC entry at COMMIT"
