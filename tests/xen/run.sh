#!/bin/bash
# run.sh BUILDDIR: the end-to-end test on real Xen under QEMU (TCG).
#   1. fetch-debs.sh   host packages (QEMU...) and the Xen/kernel debs (cached)
#   2. build-images.sh images with BUILDDIR installed into dom0
#   3. phase A: two Xen hosts with the same CPU (qemu64,+svm,+npt) joined by a
#      QEMU socket netdev on 127.0.0.1; dom0 of host 1 runs scenarios 1-5
#   4. phase B: host 1 gets ssse3/sse4.1/sse4.2/popcnt, host 2 not: scenario 4b
# Prints one PASS:/FAIL: line per verdict and "xen-e2e: N passed, N failed".
# Env: XEN_E2E_LAB (work dir, default BUILDDIR/tests/xen/lab), XEN_E2E_CACHE
# (debs, default /var/tmp/migrate-live-xen-e2e), E2E_PHASES ("A B"),
# E2E_ONLY_A / E2E_ONLY_B (scenario subsets, e.g. "s2"), XEN_E2E_PORT (40123),
# XEN_E2E_DEADLINE (seconds for everything, default 1140), XEN_E2E_SLOW (percent
# applied to every scenario's budget, default 100: a machine shared with other
# work needs more).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:?usage: run.sh BUILDDIR}" && pwd)
LAB=${XEN_E2E_LAB:-$BUILD/tests/xen/lab}
RUN=$LAB/run
PORT=${XEN_E2E_PORT:-40123}
CPU_PLAIN=qemu64,+svm,+npt
CPU_RICH=qemu64,+svm,+npt,+ssse3,+sse4.1,+sse4.2,+popcnt
BAD='Kernel panic|Panic on CPU|FATAL|emulation failed|Oops:'
mkdir -p "$RUN"
T_ALL=$(date +%s)
# everything, fetch and build included, ends by then (setup.sh's stage: 1140 under its 1200 s)
DEADLINE=$((T_ALL + ${XEN_E2E_DEADLINE:-1140}))
declare -a TIMES=()
pass=0
failn=0

verdict() { # PASS|FAIL ID DETAIL
    echo "$1: $2 - $3"
    if [ "$1" = PASS ]; then pass=$((pass + 1)); else failn=$((failn + 1)); fi
}
timed() { # NAME CMD...: run, record the duration
    local name=$1 t0=$(date +%s) rc=0
    shift
    "$@" || rc=$?
    TIMES+=("$(printf '%-22s %4ss  rc=%s' "$name" "$(($(date +%s) - t0))" "$rc")")
    return $rc
}

stophost() {
    local p
    p=$(cat "$RUN/$1.pid" 2>/dev/null) || return 0
    kill "$p" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$p" 2>/dev/null
    rm -f "$RUN/$1.pid"
}
cleanup() { stophost h1; stophost h2; }
trap cleanup EXIT

# boothost NAME ROLE CPU PHASE IP NETDEV...
boothost() {
    local name=$1 role=$2 cpu=$3 phase=$4 ip=$5
    shift 5
    rm -f "$RUN/$name.log"
    qemu-system-x86_64 -accel tcg -cpu "$cpu" -m 1024 -smp 1 -machine pc \
        -display none -monitor none -serial "file:$RUN/$name.log" -no-reboot \
        -kernel "$LAB/img/xen" \
        -append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=1 loglvl=all guest_loglvl=all" \
        -initrd "$LAB/img/vmlinuz console=hvc0 earlyprintk=xen e2e.role=$role e2e.ip=$ip e2e.phase=$phase e2e.slow=${XEN_E2E_SLOW:-100} ${XEN_E2E_DOM0EXTRA:-},$LAB/img/dom0-initrd.gz" \
        -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0 \
        -pidfile "$RUN/$name.pid" -daemonize "$@"
}

# waitlog NAME REGEX SECONDS: 0 when seen; 1 on timeout, crash or QEMU exit
waitlog() {
    local name=$1 re=$2 to=$3 log=$RUN/$1.log start=$(date +%s) pid
    pid=$(cat "$RUN/$name.pid" 2>/dev/null || true)
    while :; do
        grep -a -q -E "$re" "$log" 2>/dev/null && return 0
        if grep -a -q -E "$BAD" "$log" 2>/dev/null; then
            echo "$name: crashed: $(grep -a -E "$BAD" "$log" | head -2 | tr '\n' ' ')"
            return 1
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then echo "$name: QEMU exited"; return 1; fi
        if [ $(($(date +%s) - start)) -ge "$to" ]; then echo "$name: timeout (${to}s) waiting for '$re'"; return 1; fi
        sleep 0.5
    done
}

results_of() { # print the verdicts in a serial log
    tr -d '\r' <"$RUN/$1.log" | grep -a -E '^E2E-RESULT (PASS|FAIL) ' | while read -r _ v id detail; do
        echo "$v $id $detail"
    done
}

# phase NAME CPU1 CPU2 SCENARIOS... : boot both hosts, follow host 1's scenarios
phase() {
    local ph=$1 cpu1=$2 cpu2=$3 t0 s cur="" cur_t0=0 cur_b=0 line
    shift 3
    local expected="$*"
    t0=$(date +%s)
    if ! boothost h2 h2 "$cpu2" "$ph" 10.99.0.2 -netdev "socket,id=n0,listen=127.0.0.1:$PORT" \
        -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:02 ||
        ! boothost h1 h1 "$cpu1" "$ph" 10.99.0.1 -netdev "socket,id=n0,connect=127.0.0.1:$PORT" \
            -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:01; then
        for s in $expected; do verdict FAIL "$s" "phase $ph: QEMU did not start"; done
        cleanup
        return 1
    fi
    if ! waitlog h1 'E2E-MARK xen-tools-up' 240 || ! waitlog h2 'E2E-MARK h2-ready' 240; then
        for s in $expected; do verdict FAIL "$s" "phase $ph: a host did not boot (serial logs in $RUN)"; done
        tail -5 "$RUN/h1.log" "$RUN/h2.log"
        cleanup
        return 1
    fi
    TIMES+=("$(printf '%-22s %4ss' "boot-$ph" "$(($(date +%s) - t0))")")
    echo "phase $ph: both hosts up in $(($(date +%s) - t0))s; CPU flags of interest: h1 [$(tr -d '\r' <"$RUN/h1.log" | grep -a -m1 'E2E-MARK cpu-flags' | sed 's/.*cpu-flags *//')], h2 [$(tr -d '\r' <"$RUN/h2.log" | grep -a -m1 'E2E-MARK cpu-flags' | sed 's/.*cpu-flags *//')]"
    # follow: each E2E-BEGIN gets its budget + 60 s; the whole phase 20 min at most
    local seen_end=""
    while :; do
        if grep -a -q 'E2E-MARK scenarios-exit' "$RUN/h1.log"; then break; fi
        line=$(tr -d '\r' <"$RUN/h1.log" | grep -a -E '^E2E-BEGIN ' | tail -1)
        if [ -n "$line" ] && [ "$line" != "$cur" ]; then
            cur=$line
            cur_t0=$(date +%s)
            cur_b=$(echo "$line" | sed -n 's/.*budget=\([0-9]*\).*/\1/p')
        fi
        if ! kill -0 "$(cat "$RUN/h1.pid" 2>/dev/null)" 2>/dev/null; then
            echo "phase $ph: host 1 QEMU exited"
            break
        fi
        if grep -a -q -E "$BAD" "$RUN/h1.log" "$RUN/h2.log"; then
            echo "phase $ph: crash: $(grep -a -h -E "$BAD" "$RUN/h1.log" "$RUN/h2.log" | head -2 | tr '\n' ' ')"
            break
        fi
        if [ -n "$cur" ] && [ $(($(date +%s) - cur_t0)) -gt $((cur_b + 60)) ]; then
            echo "phase $ph: '$cur' over its budget; stopping"
            break
        fi
        if [ "$(date +%s)" -gt "$DEADLINE" ]; then
            echo "phase $ph: past the test's deadline (XEN_E2E_DEADLINE=${XEN_E2E_DEADLINE:-1140}s); stopping"
            break
        fi
        sleep 1
    done
    sleep 1
    cleanup
    tr -d '\r' <"$RUN/h1.log" | grep -a -E '^E2E-(INFO|END)' | sed 's/^/    /'
    tr -d '\r' <"$RUN/h1.log" | sed -n 's/^E2E-END \([a-z0-9]*\) \([0-9]*\) ms/\1 \2/p' | while read -r n ms; do
        echo "$n $ms"
    done >"$RUN/times-$ph"
    while read -r n ms; do TIMES+=("$(printf '%-22s %4ss' "scenario-$n" "$(((ms + 500) / 1000))")"); done <"$RUN/times-$ph"
    while read -r v id detail; do verdict "$v" "$id" "$detail"; done < <(results_of h1)
    # a scenario that never ended is a failure too
    for s in $expected; do
        grep -q "^$s " "$RUN/times-$ph" || verdict FAIL "$s" "phase $ph: scenario did not finish (serial logs in $RUN)"
    done
    cp "$RUN/h1.log" "$RUN/h1-$ph.log"
    cp "$RUN/h2.log" "$RUN/h2-$ph.log"
}

timed fetch-debs bash "$HERE/fetch-debs.sh" >"$RUN/fetch.out" 2>&1 || {
    tail -20 "$RUN/fetch.out"
    verdict FAIL setup "fetch-debs.sh failed"
    echo "xen-e2e: $pass passed, $failn failed"
    exit 1
}
timed build-images bash "$HERE/build-images.sh" "$BUILD" "$LAB" >"$RUN/build.out" 2>&1 || {
    tail -20 "$RUN/build.out"
    verdict FAIL setup "build-images.sh failed"
    echo "xen-e2e: $pass passed, $failn failed"
    exit 1
}
tail -1 "$RUN/build.out"
for ph in ${E2E_PHASES:-A B}; do
    if [ $((DEADLINE - $(date +%s))) -lt 120 ]; then
        for s in $(if [ "$ph" = A ]; then echo "${E2E_ONLY_A:-s1 s4a s5 s2 s3 s6}"; else echo "${E2E_ONLY_B:-s4b}"; fi); do
            verdict FAIL "$s" "phase $ph not run: less than 120 s left before the deadline"
        done
        continue
    fi
    case $ph in
    A)
        list=${E2E_ONLY_A:-s1 s4a s5 s2 s3 s6}
        XEN_E2E_DOM0EXTRA="${XEN_E2E_DOM0EXTRA:-} e2e.only=${list// /+}" \
            timed phase-A phase A "$CPU_PLAIN" "$CPU_PLAIN" $list
        ;;
    B)
        list=${E2E_ONLY_B:-s4b}
        XEN_E2E_DOM0EXTRA="${XEN_E2E_DOM0EXTRA:-} e2e.only=${list// /+}" \
            timed phase-B phase B "$CPU_RICH" "$CPU_PLAIN" $list
        ;;
    esac
done
echo
echo "xen-e2e timings:"
printf '  %s\n' "${TIMES[@]}"
echo "  total                  $(($(date +%s) - T_ALL))s"
echo "xen-e2e: $pass passed, $failn failed"
[ "$failn" -eq 0 ]
