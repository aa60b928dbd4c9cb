# lib.sh: helpers for integration tests that drive the real xl-migrate-live
# binary on test-guest hosts (loopback and unix sockets only).
# A test sources this, calls 'setup', and uses start_host / create_guest /
# migrate / wait_verified. Everything it starts is stopped by 'cleanup'.
set -euo pipefail

: "${XLML:?XLML (path to xl-migrate-live) not set}"
top_srcdir=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
T=$(mktemp -d /tmp/mlit.XXXXXX)
HOSTPIDS=()

cleanup() {
    local rc=$?
    # SIGTERM: a host destroys its guests and exits
    for p in "${HOSTPIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${HOSTPIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        echo "--- logs of the failed test ($T) ---"
        tail -n 30 "$T"/*.log "$T"/*.out 2>/dev/null || true
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

need() { # need COMMAND PACKAGE: install a client the test uses if it is missing
    command -v "$1" >/dev/null && return 0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
        fail "$2 is not installed and cannot be installed (setup.sh deps installs it)"
}

# A pre-shared key for the tcp: listeners.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
echo >>"$T/key"
chmod 600 "$T/key"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_host NAME [--listen]: a test-guest host in $T/host-NAME; with
# --listen it also accepts migrations on tcp:127.0.0.1:PORT (PORT_NAME).
# start_host NAME [--listen] [SIMHOST OPTIONS...] (e.g. --mem 1G)
start_host() {
    local name=$1 dir=$T/host-$1
    shift
    mkdir -p "$dir"
    if [ "${1:-}" = --listen ]; then
        shift
        local port
        port=$(free_port)
        eval "PORT_$name=$port"
        "$XLML" -v --dir "$dir" --state-dir "$dir" --listen "tcp:127.0.0.1:$port" --psk "$T/key" \
            "$@" simhost 2>"$T/host-$name.log" &
    else
        "$XLML" -v --dir "$dir" --state-dir "$dir" "$@" simhost 2>"$T/host-$name.log" &
    fi
    HOSTPIDS+=($!)
    eval "HOSTPID_$name=$!"
    # (a host with --mem populates its memory first: seconds)
    for _ in $(seq 400); do
        "$XLML" --host "$dir" sim list >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    fail "host $name did not start"
}

host_dir() { echo "$T/host-$1"; }

# policy_file POOL EXTRA: a policy over hosts a, b and c (started with
# start_host), each reached by exec of this binary; EXTRA is appended to
# host a's exec list (e.g. ", --bandwidth, 4M" to slow its moves down)
policy_file() {
    echo "pool: $1"
    echo "profile: sim-test"
    echo "concurrency: 2"
    echo "hosts:"
    for h in a b c; do
        echo "  - name: $h"
        echo "    uri: '$(dest_uri $h)'"
        echo "    exec: ['$XLML', --host, '$(host_dir $h)', --state-dir, '$(host_dir $h)', --psk, '$T/key'$([ $h = a ] && echo "$2")]"
    done
}
dest_uri() { eval "echo tcp:127.0.0.1:\$PORT_$1"; }

# create_guest HOST NAME MEM SIMCONFIG
create_guest() {
    "$XLML" --host "$(host_dir "$1")" sim create "$2" --mem "$3" --sim "$4" >/dev/null ||
        fail "cannot create guest $2 on $1"
}

# guest_field HOST NAME FIELD: one field of 'sim status' (JSON)
guest_field() {
    "$XLML" --host "$(host_dir "$1")" sim status "$2" 2>/dev/null |
        python3 -c "import sys,json; print(json.load(sys.stdin)['$3'])"
}

guest_exists() {
    "$XLML" --host "$(host_dir "$1")" sim status "$2" >/dev/null 2>&1
}

# migrate FROM NAME TO [options...]: runs the CLI, sets MIG_RC, output in $T/migrate.out
migrate() {
    local from=$1 name=$2 to=$3
    shift 3
    MIG_RC=0
    "$XLML" --host "$(host_dir "$from")" --state-dir "$(host_dir "$from")" --psk "$T/key" "$@" \
        "sim:$name" "$(dest_uri "$to")" >"$T/migrate.out" 2>"$T/migrate.log" || MIG_RC=$?
}

# wait_verified HOST NAME: the guest's own memory check after an incoming move
wait_verified() {
    local v
    for _ in $(seq 300); do
        v=$(guest_field "$1" "$2" verify || echo "-")
        case "$v" in
        ok) return 0 ;;
        FAILED) fail "guest $2 on $1 failed its memory check: $("$XLML" --host "$(host_dir "$1")" sim status "$2")" ;;
        esac
        sleep 0.1
    done
    fail "guest $2 on $1 never verified (state: $v)"
}

# The source must still run the guest, writing, after a failed move.
assert_running_on() {
    guest_exists "$1" "$2" || fail "guest $2 is gone from $1"
    local st w1 w2
    st=$(guest_field "$1" "$2" state)
    [ "$st" = running ] || fail "guest $2 on $1 is '$st', not running"
    w1=$(guest_field "$1" "$2" writes)
    sleep 0.3
    w2=$(guest_field "$1" "$2" writes)
    [ "$w2" -gt "$w1" ] || fail "guest $2 on $1 does not write any more ($w1 -> $w2)"
}

assert_absent() {
    if guest_exists "$1" "$2"; then fail "guest $2 still exists on $1"; fi
    return 0
}
