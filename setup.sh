#!/bin/bash
# setup.sh: install what migrate-live needs on Debian 12, build it, and run
# either the demo or the whole test suite. Run as root from a clean clone.
#
#   ./setup.sh demo    install, build, live-migrate the test guest locally
#   ./setup.sh test    install, build, run every test stage (what CI runs)
#
# Each stage has a time budget (seconds) and prints its duration.
set -euo pipefail
cd "$(dirname "$0")"
top=$PWD
mode=${1:-demo}
jobs=$(nproc 2>/dev/null || echo 2)

# Debian packages for building and unit testing, and Open vSwitch (started
# by hand in namespaces by the network tests: openvswitch-switch, ethtool,
# iproute2, iputils-ping). Integration tests install their other components
# in their scripts as well.
# qemu-system-x86: the QMP client's test against a real QEMU (make check);
# ansible-core, python3-voluptuous and python3-pyflakes: the Ansible
# collection's test (t-ansible.sh) and its sanity checks.
PACKAGES="build-essential autoconf automake libtool pkg-config \
libxen-dev libssl-dev libyaml-dev libzstd-dev libcmocka-dev \
clang python3 python3-jsonschema \
openssl openssh-server openssh-client \
qemu-system-x86 qemu-utils libnbd-bin \
ansible-core python3-voluptuous python3-pyflakes \
openvswitch-switch ethtool iproute2 iputils-ping"

declare -a stage_report=()
overall_rc=0

# stage NAME BUDGET_SECONDS COMMAND...: run with a time limit, record duration.
stage() {
    local name=$1 budget=$2
    shift 2
    local t0 t1 rc=0
    t0=$(date +%s)
    echo "==> stage $name (budget ${budget}s)"
    # Functions run in a child bash so that timeout can bound them.
    timeout --foreground -k 10 "$budget" bash -c 'set -euo pipefail; "$@"' stage "$@" || rc=$?
    t1=$(date +%s)
    local verdict=ok
    if [ "$rc" -eq 124 ]; then verdict="TIMEOUT"; elif [ "$rc" -ne 0 ]; then verdict="FAILED($rc)"; fi
    stage_report+=("$(printf '%-22s %5ss / %5ss  %s' "$name" "$((t1 - t0))" "$budget" "$verdict")")
    echo "<== stage $name: $verdict in $((t1 - t0))s"
    if [ "$rc" -ne 0 ]; then
        overall_rc=1
        return 1
    fi
}

install_packages() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: run as root (it installs Debian packages)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
}

build() {
    ./autogen.sh >/dev/null
    mkdir -p build
    (cd build && ../configure --enable-werror --enable-fault-injection -q && make -s -j"$jobs")
}

# make check in a build tree, then show each cmocka summary.
check_tree() {
    local dir=$1 rc=0
    make -C "$dir" -s -j"$jobs" check >"$dir/check.out" 2>&1 || rc=$?
    grep -E '^(PASS|FAIL|XPASS|ERROR|SKIP):|^# (TOTAL|PASS|FAIL|SKIP|ERROR)' "$dir/check.out" || true
    find "$dir/tests" -name '*.log' ! -name test-suite.log -print0 2>/dev/null |
        xargs -0 -r grep -h -E '^\[  (PASSED|FAILED)  \]|^\[==========\] .* run\.' || true
    if [ "$rc" -ne 0 ]; then
        cat "$dir/test-suite.log" 2>/dev/null | tail -60
    fi
    return "$rc"
}

sanitizer_build_and_check() {
    mkdir -p build-san
    (cd build-san && ../configure -q --enable-werror --enable-sanitizers --enable-fault-injection \
        CFLAGS="-O1 -g" && make -s -j"$jobs")
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        check_tree build-san
}

distcheck() {
    make -C build -s -j"$jobs" distcheck >build/distcheck.out 2>&1 || { tail -40 build/distcheck.out; return 1; }
    grep -E 'archives ready|\.tar\.gz' build/distcheck.out | head -3
}

# The libFuzzer targets, 60 s each: the record decoder and the handshake;
# the profile/facts parsers and the pre-flight check; the Xen stream; the
# NBD server's handshake and requests.
fuzz() {
    tests/fuzz/run-fuzz.sh build "${FUZZ_SECONDS:-60}"
    tests/fuzz/run-fuzz-profile.sh build "${FUZZ_SECONDS:-60}"
    tests/fuzz/run-fuzz-xen-stream.sh build "${FUZZ_SECONDS:-60}"
    tests/fuzz/run-fuzz-nbd.sh build "${FUZZ_SECONDS:-60}"
}

# The stream benchmark, small and once: checks it runs and prints its JSON.
bench_quick() {
    make -C build -s bench/stream bench/plaincopy
    ./build/bench/stream --quick
    bench/precopy --quick
    bench/nbd-export --quick
    make -C build -s bench/filecopy
    bench/blockmirror --quick
}

# Integration tests: the real binary between test-guest hosts on loopback.
integration() {
    make -C build -s check-integration
}

# The same again with the test guest's fallback dirty tracking forced
# (synchronous userfaultfd write-protect, for kernels before 6.7).
integration_sync() {
    MIG_SIM_TRACKING=sync make -C build -s check-integration
}

# The fault campaign under the sanitizer build: 100 migrations with a random
# fault each (5 min cap), then the self-test with deliberately planted bugs.
campaign() {
    make -C build-san -s check-campaign
    make -C build-san -s check-campaign-selftest
}

# End-to-end on real Xen: two Xen 4.17 hosts under QEMU (TCG), this build
# installed in their dom0s (tests/xen/README.md). Installs QEMU itself.
xen_e2e() {
    XEN_E2E_DEADLINE=${XEN_E2E_DEADLINE:-1140} make -C build -s check-xen
}

# Count individual tests: cmocka's summaries plus the scripts' "N passed, N failed".
summary() {
    local p=0 f=0 n
    for dir in build build-san; do
        [ -d "$dir/tests" ] || continue
        while read -r n; do p=$((p + n)); done < <(find "$dir/tests" -name '*.log' ! -name test-suite.log \
            -exec grep -h -oP '^\[  PASSED  \] \K[0-9]+' {} + 2>/dev/null)
        while read -r n; do f=$((f + n)); done < <(find "$dir/tests" -name '*.log' ! -name test-suite.log \
            -exec grep -h -oP '^\[  FAILED  \] \K[0-9]+' {} + 2>/dev/null)
        while read -r a b; do p=$((p + a)); f=$((f + b)); done < <(find "$dir/tests" -name '*.sh.log' \
            -exec cat {} + 2>/dev/null | sed -nE 's/^([A-Za-z-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2 \3/p')
    done
    # integration, campaign and Xen end-to-end runs print their own totals
    while read -r a b; do p=$((p + a)); f=$((f + b)); done < <(cat build/integration*.out \
        build/campaign.out build/xen-e2e.out 2>/dev/null |
        sed -nE 's/^(integration|campaign|campaign self-test|xen-e2e): ([0-9]+) passed, ([0-9]+) failed.*/\2 \3/p')
    echo
    echo "Stage durations:"
    printf '  %s\n' "${stage_report[@]}"
    echo
    [ "$overall_rc" -eq 0 ] || f=$((f > 0 ? f : 1))
    echo "tests: $p passed, $f failed"
}

export jobs PACKAGES
export -f install_packages build check_tree sanitizer_build_and_check distcheck fuzz bench_quick \
    integration integration_sync campaign xen_e2e

case "$mode" in
demo)
    stage deps 900 install_packages
    stage build 600 build
    echo
    ./build/xl-plugin/xl-migrate-live demo
    ;;
test | check)
    stage deps 900 install_packages || { summary; exit 1; }
    stage build 600 build || { summary; exit 1; }
    stage make-check 600 check_tree build || true
    stage sanitizers 900 sanitizer_build_and_check || true
    stage campaign 600 campaign >build/campaign.out 2>&1 || true
    grep -E '^campaign|VIOLATION|^(PASS|FAIL):|"runs"' build/campaign.out || true
    stage distcheck 600 distcheck || true
    stage fuzz 500 fuzz || true
    stage bench-quick 300 bench_quick || true
    stage integration 900 integration >build/integration.out 2>&1 || true
    grep -E '^(PASS|FAIL)|integration:' build/integration.out || true
    stage integration-sync 600 integration_sync >build/integration-sync.out 2>&1 || true
    grep -E '^(PASS|FAIL|NOT RERUN)|integration:' build/integration-sync.out || true
    # The Xen end-to-end run (issues 8, 9): two Xen hosts under QEMU,
    # scenarios 1-6 with this build and stock xl, 20 min at most (the
    # harness stops itself at 1140 s; 9 min on a quiet 2-core machine,
    # tests/xen/README.md "Status"). XEN_E2E=0 leaves it out, and says so.
    if [ "${XEN_E2E:-1}" != 0 ]; then
        stage xen-e2e 1200 xen_e2e >build/xen-e2e.out 2>&1 || true
        grep -E '^(PASS|FAIL)|^  [a-z]|xen-e2e' build/xen-e2e.out || true
    else
        echo "==> stage xen-e2e: NOT RUN (XEN_E2E=0); make -C build check-xen runs it"
    fi
    summary
    exit "$overall_rc"
    ;;
*)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
