# net-lib.sh: helpers for the network handoff tests (sourced after lib.sh).
# SAFETY: the caller re-executes itself under `unshare --net` (net_isolate),
# and every device is created directly inside a test namespace
# (ip link add X netns NS type veth peer name Y netns NS2), so nothing here
# can ever touch the machine's own interfaces.

# net_isolate "$@": run the rest of the script in a network namespace of its
# own (the machine's interfaces are not even visible from there).
net_isolate() {
    if [ -z "${NH_ISOLATED:-}" ]; then
        export NH_ISOLATED=1
        exec unshare --net -- bash "$0" "$@"
    fi
}

net_need() { # install what the test needs (Debian packages), once
    local miss=()
    command -v ovs-vswitchd >/dev/null || miss+=(openvswitch-switch)
    command -v ethtool >/dev/null || miss+=(ethtool)
    command -v ip >/dev/null || miss+=(iproute2)
    command -v ping >/dev/null || miss+=(iputils-ping)
    command -v bridge >/dev/null || miss+=(iproute2)
    if [ ${#miss[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${miss[@]}" \
            >/dev/null || fail "cannot install ${miss[*]}"
    fi
}

NS_LIST=()
OVS_PIDFILES=()
# ns_add NAME: a namespace with lo up and IPv6 off (no MLD/DAD chatter that
# would teach a switch the guest's new place and hide a missing announcement)
ns_add() {
    ip netns add "$1"
    NS_LIST+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# veth NS1 DEV1 NS2 DEV2: a pair created directly inside its namespaces, up,
# tx checksum offload off (userspace OVS does not fill in checksums)
veth() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
    ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
    ip netns exec "$3" ethtool -K "$4" tx off >/dev/null
}

# ovs_start HOSTNS: ovsdb-server + ovs-vswitchd of that 'host', userspace
# datapath, state in $T/ovs-HOSTNS (OVS_RUNDIR), no kernel module, no systemd
ovs_start() {
    local ns=$1 d=$T/ovs-$1
    mkdir -p "$d"
    ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec "$ns" env OVS_RUNDIR="$d" OVS_LOGDIR="$d" OVS_DBDIR="$d" \
        ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --unixctl="$d/ovsdb-server.ctl" \
        --pidfile="$d/ovsdb-server.pid" --log-file="$d/ovsdb-server.log" --detach
    OVS_PIDFILES+=("$d/ovsdb-server.pid")
    ovs-vsctl --db="unix:$d/db.sock" --no-wait init
    ovs-vsctl --db="unix:$d/db.sock" --no-wait set Open_vSwitch . other_config:userspace-tso-enable=false
    ip netns exec "$ns" env OVS_RUNDIR="$d" OVS_LOGDIR="$d" OVS_DBDIR="$d" \
        ovs-vswitchd "unix:$d/db.sock" --unixctl="$d/ovs-vswitchd.ctl" \
        --pidfile="$d/ovs-vswitchd.pid" --log-file="$d/ovs-vswitchd.log" --detach
    OVS_PIDFILES+=("$d/ovs-vswitchd.pid")
}
# in_host NS CMD...: a command in the host's namespace with its OVS_RUNDIR
in_host() {
    local ns=$1
    shift
    ip netns exec "$ns" env OVS_RUNDIR="$T/ovs-$ns" "$@"
}
vsctl() { local ns=$1; shift; ovs-vsctl --db="unix:$T/ovs-$ns/db.sock" "$@"; }
ofctl() { local ns=$1 cmd=$2 br=$3; shift 3; ovs-ofctl "$cmd" "unix:$T/ovs-$ns/$br.mgmt" "$@"; }

net_cleanup() {
    for f in "${OVS_PIDFILES[@]:-}"; do
        [ -n "$f" ] && [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.2
    for n in "${NS_LIST[@]:-}"; do
        [ -n "$n" ] && ip netns del "$n" 2>/dev/null || true
    done
}

# our_flows NS BR: how many flows with a migrate-live cookie the bridge has
our_flows() {
    ofctl "$1" dump-flows "$2" | grep -c 'cookie=0x4d4c' || true
}

# net_start_host NS NAME RUNDIR: a test-guest host in namespace NS, state in
# $T/host-NAME, Open vSwitch run dir RUNDIR, accepting migrations on
# unix:$T/host-NAME/mig.sock (a unix socket is reachable from every namespace)
net_start_host() {
    local dir=$T/host-$2
    mkdir -p "$dir"
    ip netns exec "$1" env OVS_RUNDIR="$3" "$XLML" -v --dir "$dir" --state-dir "$dir" \
        --listen "unix:$dir/mig.sock" simhost >"$T/host-$2.out" 2>"$T/host-$2.log" &
    HOSTPIDS+=($!)
    for _ in $(seq 100); do
        [ -S "$dir/mig.sock" ] && "$XLML" --host "$dir" sim list >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "host $2 did not start"
}

# net_migrate NS FROM TO RUNDIR [OPTIONS...]: the CLI, run on host FROM (in
# namespace NS), moves guest 'web' to host TO
net_migrate() {
    local ns=$1 from=$2 to=$3 rundir=$4
    shift 4
    ip netns exec "$ns" env OVS_RUNDIR="$rundir" "$XLML" -v --host "$T/host-$from" \
        --state-dir "$T/host-$from" "$@" sim:web "unix:$T/host-$to/mig.sock" \
        >"$T/mig.out" 2>"$T/mig.log" || fail "migration $from -> $to failed: $(tail -5 "$T/mig.log")"
}
