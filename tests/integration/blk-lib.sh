# blk-lib.sh: helpers for the block-mirror tests (t-blk-*.sh), on top of
# lib.sh: a destination host whose listener maps the managed disk
# (--disk-map), managed-disk servers (disk-serve) and the qemu-io writers
# of blk-writer.py that stand for the guest's disk I/O.
source "$(dirname "$0")/lib.sh"

need qemu-io qemu-utils
need nbdinfo libnbd-bin

# start_dest NAME ARGS...: a test-guest host listening for migrations, with
# extra options for its receiver (e.g. --disk-map SRC=DST)
start_dest() {
    local name=$1 dir=$T/host-$1 port
    shift
    mkdir -p "$dir"
    port=$(free_port)
    eval "PORT_$name=$port"
    "$XLML" -v --dir "$dir" --state-dir "$dir" --listen "tcp:127.0.0.1:$port" --psk "$T/key" \
        "$@" simhost 2>"$T/host-$name.log" &
    HOSTPIDS+=($!)
    for _ in $(seq 100); do
        "$XLML" --host "$dir" sim list >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "host $name did not start"
}

# disk_serve VAR HOST DOMAIN SOCKET IMAGE: a managed-disk server on HOST's
# state directory; its pid in $VAR
disk_serve() {
    local var=$1 host=$2 dom=$3 sock=$4 img=$5 pid
    rm -f "$T/ds-$host.ready"
    "$XLML" -v --state-dir "$(host_dir "$host")" disk-serve --domain "$dom" --socket "$sock" \
        "$img" >"$T/ds-$host.ready" 2>>"$T/disk-$host.log" &
    pid=$!
    HOSTPIDS+=("$pid")
    eval "$var=$pid"
    for _ in $(seq 100); do
        grep -q control= "$T/ds-$host.ready" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || fail "disk-serve exited: $(tail -3 "$T/disk-$host.log")"
        sleep 0.05
    done
    fail "disk-serve did not start"
}

# writer NAME MODE START LEN SEED [ARGS]: blk-writer.py in the background ($WPID_NAME)
writer() {
    local name=$1 mode=$2 start=$3 len=$4 seed=$5
    shift 5
    python3 "$top_srcdir/tests/integration/blk-writer.py" --src "$T/src.nbd" --dst "$T/dst.nbd" \
        --ref "$T/ref.img" --mode "$mode" --start "$start" --len "$len" --seed "$seed" \
        --stop-file "$T/stop" --tmp "$T" "$@" >"$T/writer-$name.json" 2>"$T/writer-$name.log" &
    eval "WPID_$name=$!"
}

wait_writer() { # wait_writer NAME: waits (not in a subshell); summary in $T/writer-NAME.json
    local pid rc=0
    eval "pid=\$WPID_$1"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "writer $1 failed ($rc): $(tail -5 "$T/writer-$1.log")"
}

json_get() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }
