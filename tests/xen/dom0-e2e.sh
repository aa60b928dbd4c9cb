#!/bin/sh
# scenarios.sh (in dom0 of host 1): the Xen end-to-end scenarios.
#   scenarios.sh PHASE        run every scenario of PHASE (A: same CPUs, B: host 1
#                             has CPU features host 2 lacks), each under a timeout
#   scenarios.sh run NAME     one scenario (what the loop calls)
# Host 2 runs commands for us over the QEMU link ('on h2 CMD', a shell per
# connection behind socat on port 7000). Output protocol, read by run.sh
# from the serial log:
#   E2E-BEGIN NAME budget=S   a scenario starts
#   E2E-RESULT PASS|FAIL ID DETAIL   one verdict (a scenario may give several)
#   E2E-INFO ...              figures and diagnostics
#   E2E-END NAME              the scenario is over
# Every wait has a bound; each scenario runs under busybox timeout.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
PSK=/etc/migrate-live.psk
CON=/var/log/xen/console
# Anything that outlives an 'on h2' command (listeners, xl's own daemon after
# create/restore) starts through 'e2e-prog daemon' or 'e2e-prog nofds': the
# control socat's sockets leak into its shell, and a process holding them
# keeps h1's 'on' waiting for an EOF that never comes.

info() { echo "E2E-INFO $*"; }
# diagnostics straight to the serial log (fd 3, opened by the driver), even
# from a function whose output a scenario captures
diagout() { if { true >&3; } 2>/dev/null; then cat >&3; else cat; fi; }
result() { echo "E2E-RESULT $*"; }
now() { e2e-prog now; }
ip() { case $1 in h1) echo 10.99.0.1 ;; h2) echo 10.99.0.2 ;; esac; }
other() { case $1 in h1) echo h2 ;; h2) echo h1 ;; esac; }

# on HOST CMD: run the shell command on HOST, print its output, return its
# status. Over the link the answer ends with a "__RC=n" line; the client stops
# at that line rather than at EOF (a program left running on h2 can keep the
# connection open). It blocks on a fifo, not polling: a poll loop here ate
# a good part of host 1's one CPU while a migration ran, slowing whichever
# side ran on host 1.
on() {
    _h=$1
    shift
    if [ "$_h" = h1 ]; then
        sh -c "$*"
        return $?
    fi
    _f=/tmp/on.$$.$RANDOM
    mkfifo "$_f" || return 255
    {
        printf '%s\n' "$*"
        echo 'echo "__RC=$?"'
    } | timeout 600 socat -t 600 - TCP:10.99.0.2:7000 >"$_f" 2>&1 &
    _p=$!
    # awk opens the fifo itself: the shell's open, blocked until socat
    # opens the other end, fails with EINTR when a child of ours exits
    awk 'BEGIN { rc = 255 } /^__RC=/ { rc = substr($0, 6) + 0; exit } { print } END { exit rc }' "$_f"
    _rc=$?
    kill $_p 2>/dev/null
    rm -f "$_f"
    return $_rc
}

# wait_for SECONDS CMD...: poll CMD every 0.5 s until it succeeds, for at
# most SECONDS of wall time (a poll can take a second on an emulated host)
wait_for() {
    _end=$(($(date +%s) + $1))
    shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 0.5
    done
}

# --- the guest, seen from dom0 ------------------------------------------
glog() { on "$1" "cat $CON/guest-$2.log $CON/guest-$2--incoming.log 2>/dev/null"; }
counter_max() { glog "$1" "$2" | sed -n 's/.*GUEST-COUNTER \([0-9]*\).*/\1/p' | sort -n | tail -1; }
pass_max() { glog "$1" "$2" | sed -n "s/.*$3-OK pass=\([0-9]*\).*/\1/p" | sort -n | tail -1; }
pass_above() { [ "$(pass_max "$1" "$2" "$3")" -gt "$4" ] 2>/dev/null; }
counter_above() { [ "$(counter_max "$1" "$2")" -gt "$3" ] 2>/dev/null; }
bad_lines() { glog "$1" "$2" | grep -a -E 'MEM-BAD|LOAD-BAD' | head -3; }
domstate() { on "$1" "xl list $2 2>/dev/null" | awk 'NR==2 {print $5}'; }
exists_on() { on "$1" "xl domid $2 >/dev/null 2>&1"; }
is_load() { grep -q 'e2e.load' /etc/xen/"$1".cfg; }

# running_on HOST NAME: domain there, not paused, counter moving
running_on() {
    exists_on "$1" "$2" || { echo "no domain $2 on $1"; return 1; }
    _st=$(domstate "$1" "$2")
    case $_st in *p* | *s* | *c* | *d*) echo "domain $2 on $1 is in state $_st"; return 1 ;; esac
    _c=$(counter_max "$1" "$2")
    wait_for 10 counter_above "$1" "$2" "${_c:-0}" || { echo "counter of $2 on $1 stuck at $_c"; return 1; }
    return 0
}

# memory_ok HOST NAME: a new MEM-OK (and LOAD-OK) pass on HOST, no BAD line
memory_ok() {
    _m=$(pass_max "$1" "$2" MEM)
    wait_for 30 pass_above "$1" "$2" MEM "${_m:-0}" || { echo "no new MEM-OK pass on $1 (last ${_m:-none})"; return 1; }
    if is_load "$2"; then
        _l=$(pass_max "$1" "$2" LOAD)
        wait_for 30 pass_above "$1" "$2" LOAD "${_l:-0}" || { echo "no new LOAD-OK pass on $1"; return 1; }
    fi
    _b=$(bad_lines "$1" "$2")
    [ -z "$_b" ] || { echo "memory check failed: $_b"; return 1; }
    return 0
}

create() { # HOST NAME: create, wait until every guest program reports
    on "$1" "e2e-prog nofds xl create /etc/xen/$2.cfg" >/tmp/create.out 2>&1 || {
        info "xl create $2 on $1 failed: $(tail -3 /tmp/create.out | tr '\n' ' ')"
        return 1
    }
    wait_for 120 pass_above "$1" "$2" MEM 0 || { info "guest $2 on $1: no MEM-OK in 120 s"; glog "$1" "$2" | tail -5; return 1; }
    if is_load "$2"; then
        wait_for 30 pass_above "$1" "$2" LOAD 0 || { info "guest $2 on $1: no LOAD-OK"; return 1; }
    fi
    info "guest $2 up on $1: $(glog "$1" "$2" | grep -a -E 'GUEST-COUNTER' | tail -1) $(glog "$1" "$2" | grep -a -m1 'GUEST-MEM')"
}

# destroy_everywhere NAME: the domain and its console logs (a new guest of
# the same name must not be judged by its predecessor's lines)
destroy_everywhere() {
    for _h in h1 h2; do
        on $_h "xl destroy $1 2>/dev/null; xl destroy $1--incoming 2>/dev/null; sleep 0.2; rm -f $CON/guest-$1.log $CON/guest-$1--incoming.log; true" >/dev/null 2>&1
    done
}

# diag: what runs and what the last commands said, on both hosts
diag() {
    for _h in h1 h2; do
        on $_h "ps | grep -v -E ' \[|ps\$|grep|sleep' | tail -25; xl list; tail -n 3 /tmp/*.log" 2>&1 | sed "s/^/E2E-DIAG $_h /"
    done
}

where_is() { # NAME: the host running it
    for _h in h1 h2; do exists_on $_h "$1" && { echo $_h; return 0; }; done
    return 1
}

# downtime FROM_MS TO_MS NAME: the largest gap the guest's probe saw with its
# end in the window (guest wallclock, host 2 synced to host 1), in ms
downtime() {
    { glog h1 "$3"; glog h2 "$3"; } | grep -a PROBE-GAP |
        sed -n 's/.*wall_ms=\([0-9.]*\).*at=\([0-9]*\).*/\1 \2/p' |
        awk -v a="$1" -v b="$2" '$2 >= a - 1000 && $2 <= b + 5000 { if ($1 > m) m = $1 } END { printf "%.0f\n", m + 0 }'
}

median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

# --- migrations ------------------------------------------------------------
# Right before a move: Xen's wallclock on h1 := dom0 h1's clock, dom0 h2's
# clock (and so Xen's wallclock there) := h1's. Each Xen keeps time from its
# own TSC calibration, done under TCG on a busy machine, so the two drift apart
# by a fraction of a percent: syncing per move keeps the drift over one move
# to a few ms. After the move, the residual is measured (CLOCK measure).
clocks_sync() {
    e2e-prog clockpush
    on h2 "e2e-prog clocksync 10.99.0.1 7001 set" >/dev/null
}
clocks_residual() { on h2 "e2e-prog clocksync 10.99.0.1 7001 measure" | sed -n 's/.*offset_us=\(-*[0-9]*\).*/\1/p'; }
listening() { on "$1" "netstat -ltn | grep -q ':$2 '"; }

# stock_migrate FROM TO NAME: xl migrate over socat (-s "": the host argument is
# the whole transport command), xl migrate-receive behind socat on TO.
# Sets MIG_RC, MIG_MS.
stock_migrate() {
    on "$2" "e2e-prog daemon /tmp/stock-recv.log /tmp/stock-recv.pid socat -b 1048576 TCP-LISTEN:8012,reuseaddr EXEC:\"xl migrate-receive\""
    wait_for 15 listening "$2" 8012 || { MIG_RC=99; MIG_MS=0; info "stock receiver did not listen"; return; }
    clocks_sync
    _t0=$(now)
    on "$1" "timeout 300 xl migrate -s '' $3 'socat -b 1048576 - TCP:$(ip "$2"):8012' >/tmp/stock-mig.log 2>&1"
    MIG_RC=$?
    MIG_T0=$_t0
    MIG_T1=$(now)
    MIG_MS=$((MIG_T1 - _t0))
    [ $MIG_RC -eq 0 ] || info "stock xl migrate rc=$MIG_RC: $(on "$1" 'tail -4 /tmp/stock-mig.log' | tr '\n' ' ')"
    MIG_SKEW_US=$(clocks_residual)
    on "$2" 'kill $(cat /tmp/stock-recv.pid) 2>/dev/null; true'
}

# ours_listen TO TRANSPORT: start xl-migrate-live's receiver on TO; 0 when it listens
ours_listen() {
    case $2 in
    tcp) _uri=tcp:0.0.0.0:8002 _port=8002 _auth="--psk $PSK" ;;
    tls) _uri=tls:0.0.0.0:8003 _port=8003 _auth="" ;;
    esac
    # emulated hosts run tens of times slower: a link is dead after 60 s, not
    # 10; the guests boot a kernel from /guest, which the receiver's allow-list
    # must name (it refuses boot paths outside its kernel-dir)
    on "$1" "e2e-prog daemon /tmp/ours-recv.log /tmp/ours-recv.pid xl-migrate-live -v --link-timeout 60000 --backend xen:kernel-dir=/guest listen $_uri $_auth"
    _n=30
    while [ $_n -gt 0 ]; do
        listening "$1" $_port && return 0
        on "$1" 'kill -0 $(cat /tmp/ours-recv.pid) 2>/dev/null' || break
        sleep 0.5
        _n=$((_n - 1))
    done
    OURS_ERR="receiver on $1 did not listen: $(on "$1" 'tail -3 /tmp/ours-recv.log' | tr '\n' ' ')"
    return 1
}
ours_stop() { on "$1" 'kill $(cat /tmp/ours-recv.pid) 2>/dev/null; true' >/dev/null; }

# ours_migrate FROM TO NAME TRANSPORT: 'xl migrate-live' as a user types it.
# Sets MIG_RC, MIG_MS, OURS_ERR.
ours_migrate() {
    OURS_ERR=""
    MIG_MS=0
    if ! ours_listen "$2" "$4"; then
        MIG_RC=98
        ours_stop "$2"
        return
    fi
    case $4 in
    tcp) _args="--transport tcp --psk $PSK --link-timeout 60000" _port=8002 ;;
    tls) _args="--transport tls --link-timeout 60000" _port=8003 ;;
    esac
    clocks_sync
    _t0=$(now)
    on "$1" "timeout 300 xl migrate-live -v $_args $3 $(ip "$2"):$_port >/tmp/ours-mig.log 2>&1"
    MIG_RC=$?
    MIG_T0=$_t0
    MIG_T1=$(now)
    MIG_MS=$((MIG_T1 - _t0))
    MIG_SKEW_US=$(clocks_residual)
    # where the time went (setup, rounds, switchover), for the one who reads the serial log
    on "$1" 'grep -a -E ": (round [0-9]+:|switchover|domain [0-9]+ suspended|domain [0-9]+: (QEMU|device model))|total time|downtime  |sent  " /tmp/ours-mig.log | tail -16' |
        sed "s/^/E2E-DIAG $1 ours: /" | diagout
    on "$2" 'grep -a -E "device attach|applied after|committed" /tmp/ours-recv.log | tail -3' |
        sed "s/^/E2E-DIAG $2 ours receiver: /" | diagout
    if [ $MIG_RC -ne 0 ]; then
        OURS_ERR="xl migrate-live rc=$MIG_RC: $(on "$1" 'grep -a -E "error|reason" /tmp/ours-mig.log | head -3' | tr '\n' ' ') receiver: $(on "$2" 'grep -a -E "error|refused|warning" /tmp/ours-recv.log | head -4' | tr '\n' ' ')"
        # the whole story in the serial log, for the one who reads it
        on "$1" 'grep -a -v -E "libxl_event|xencall|^(setup|precopy|stop-and-copy|commit-sent) " /tmp/ours-mig.log | tail -40' | sed "s/^/E2E-DIAG $1 sender: /" | diagout
        on "$2" 'grep -a -v -E "libxl_event|xencall" /tmp/ours-recv.log | tail -60' | sed "s/^/E2E-DIAG $2 receiver: /" | diagout
    fi
    ours_stop "$2"
}

# check_moved FROM TO NAME COUNTER_BEFORE: the verdict on one migration
check_moved() {
    [ "$MIG_RC" -eq 0 ] || { echo "migration exit status $MIG_RC"; return 1; }
    if exists_on "$1" "$3"; then echo "$3 still exists on $1"; return 1; fi
    running_on "$2" "$3" || return 1
    counter_above "$2" "$3" "$4" || { echo "counter on $2 not above $4"; return 1; }
    if on "$2" "grep -a -q 'GUEST-COUNTER 0 ' $CON/guest-$3--incoming.log 2>/dev/null"; then
        echo "guest restarted on $2 (counter 0 seen)"
        return 1
    fi
    memory_ok "$2" "$3" || return 1
    return 0
}

# migrate_verified KIND FROM TO NAME [TRANSPORT]: one move, checked; prints why not
migrate_verified() {
    _c=$(counter_max "$2" "$4")
    if [ "$1" = stock ]; then stock_migrate "$2" "$3" "$4"; else ours_migrate "$2" "$3" "$4" "$5"; fi
    [ -z "$OURS_ERR" ] || { echo "$OURS_ERR"; return 1; }
    check_moved "$2" "$3" "$4" "${_c:-0}"
}

# --- scenarios --------------------------------------------------------------
# 1. xl migrate-live of a PVH guest, over tcp: (PSK) and tls: (test PKI)
s1() {
    create h1 vm1 || { result FAIL s1-tcp "guest did not start"; result FAIL s1-tls "guest did not start"; return; }
    for tr in tcp tls; do
        from=$(where_is vm1)
        to=$(other "$from")
        if migrate_verified ours "$from" "$to" vm1 $tr >/tmp/why 2>&1; then
            result PASS s1-$tr "$from->$to in ${MIG_MS} ms, guest-seen downtime $(downtime "$MIG_T0" "$MIG_T1" vm1) ms, counter continuous, source gone, memory verified"
        else
            result FAIL s1-$tr "$from->$to: $(tr '\n' ' ' </tmp/why)"
        fi
    done
    # vm1 stays for s4a and s5
}

# 2. under a write load: stock xl migrate (baseline) and ours, 3 runs each,
# interleaved (ABBAAB) so that a change in the machine's load
# during the scenario weighs on both alike
s2() {
    create h1 vm2 || { result FAIL s2-stock "guest did not start"; result FAIL s2-ours "guest did not start"; return; }
    sleep 3
    stock_dts="" stock_tts="" ours_dts="" ours_tts="" stock_why="" ours_why=""
    # ABBAAB: the guest goes back and forth, so each kind moves it both ways
    # (host 1 also runs this script), and a drift of the machine's load
    # weighs on both alike
    run_stock=0 run_ours=0
    for kind in stock ours ours stock stock ours; do
        eval "run=\$((run_$kind + 1)); run_$kind=\$run"
        eval "[ -z \"\$${kind}_why\" ]" || continue
        from=$(where_is vm2) || { eval "${kind}_why=\"run $run: vm2 is nowhere\""; continue; }
        to=$(other "$from")
        if migrate_verified $kind "$from" "$to" vm2 tcp >/tmp/why 2>&1; then
            dt=$(downtime "$MIG_T0" "$MIG_T1" vm2)
            eval "${kind}_dts=\"\$${kind}_dts $dt\" ${kind}_tts=\"\$${kind}_tts $MIG_MS\""
            info "s2 $kind run $run $from->$to: total ${MIG_MS} ms, guest-seen downtime ${dt} ms (host clocks ${MIG_SKEW_US} us apart after the move)"
        else
            eval "${kind}_why=\"run $run $from->$to: \$(tr '\\n' ' ' </tmp/why)\""
            # a failed move leaves the guest where it was: the other kind goes on
        fi
        sleep 2
    done
    for kind in stock ours; do
        eval "why=\$${kind}_why dts=\$${kind}_dts tts=\$${kind}_tts"
        [ -n "$why" ] && continue
        # shellcheck disable=SC2086
        eval "${kind}_dt=$(median3 $dts) ${kind}_tt=$(median3 $tts)"
        eval "info \"s2 $kind median: downtime \$${kind}_dt ms (runs:$dts), total \$${kind}_tt ms (runs:$tts)\""
    done
    if [ -z "$stock_why" ]; then
        result PASS s2-stock "xl migrate under load: guest-seen downtime median ${stock_dt} ms (runs:$stock_dts), total median ${stock_tt} ms (runs:$stock_tts)"
    else
        result FAIL s2-stock "$stock_why"
    fi
    if [ -n "$ours_why" ]; then
        result FAIL s2-ours "$ours_why"
    elif [ -n "$stock_why" ]; then
        result FAIL s2-ours "converged (downtime median ${ours_dt} ms, total ${ours_tt} ms) but no stock baseline to compare"
    elif [ "$ours_dt" -le "$stock_dt" ]; then
        result PASS s2-ours "converged; downtime median ${ours_dt} ms <= stock ${stock_dt} ms; total median ${ours_tt} ms (stock ${stock_tt} ms)"
    else
        result FAIL s2-ours "downtime median ${ours_dt} ms > stock ${stock_dt} ms (total ${ours_tt} vs ${stock_tt} ms)"
    fi
    destroy_everywhere vm2
}

incoming_on_h2() { on h2 "xl list 2>/dev/null | grep -q -- '--incoming'"; }
incoming_or_sender_done() { test -e /tmp/s3.rc || incoming_on_h2; }

# 3. the receiver dies mid-copy: the guest keeps running on host 1
s3_one() { # KIND
    kind=$1
    # the stock part leaves vm3 running on h1 when it passes: reuse it
    exists_on h1 vm3 || create h1 vm3 || { result FAIL s3-$kind "guest did not start"; return; }
    c0=$(counter_max h1 vm3)
    rm -f /tmp/s3.rc
    if [ "$kind" = stock ]; then
        on h2 "e2e-prog daemon /tmp/stock-recv.log /tmp/recv.pid socat -b 1048576 TCP-LISTEN:8012,reuseaddr EXEC:\"xl migrate-receive\""
        wait_for 15 listening h2 8012 || { result FAIL s3-$kind "receiver did not listen"; destroy_everywhere vm3; return; }
        (timeout 300 xl migrate -s '' vm3 'socat -b 1048576 - TCP:10.99.0.2:8012' >/tmp/s3-mig.log 2>&1; echo $? >/tmp/s3.rc) &
        victim="xl migrate-receive"
    else
        if ! ours_listen h2 tcp; then
            result FAIL s3-$kind "$OURS_ERR"
            ours_stop h2
            destroy_everywhere vm3
            return
        fi
        on h2 'cp /tmp/ours-recv.pid /tmp/recv.pid'
        (timeout 300 xl migrate-live -v --transport tcp --psk $PSK --link-timeout 60000 vm3 10.99.0.2:8002 >/tmp/s3-mig.log 2>&1; echo $? >/tmp/s3.rc) &
        victim="xl-migrate-live"
    fi
    # mid-copy: the incoming domain exists on host 2 and memory is flowing
    killed=0
    wait_for 60 incoming_or_sender_done
    if incoming_on_h2; then
        killed=1
        sleep 1
        on h2 "for p in \$(pidof socat xl xl-migrate-live); do grep -q -- '$victim' /proc/\$p/cmdline 2>/dev/null && kill -9 \$p; done; kill -9 \$(cat /tmp/recv.pid) 2>/dev/null; true"
        info "s3 $kind: receiver killed on h2 while vm3--incoming existed"
    else
        info "s3 $kind: no incoming domain appeared on h2 (the sender ended first, or 60 s passed)"
    fi
    t_kill=$(now)
    wait_for 120 test -e /tmp/s3.rc
    rc=$(cat /tmp/s3.rc 2>/dev/null || echo none)
    info "s3 $kind: the sender ended $(($(now) - t_kill)) ms after the kill (rc=$rc)"
    [ "$rc" != none ] || sed 's/^/E2E-DIAG h1 s3 sender: /' /tmp/s3-mig.log | tail -30
    why=""
    [ $killed = 1 ] || why="no copy to kill: the incoming domain never appeared on h2"
    [ -n "$why" ] || [ "$rc" != 0 ] || why="migration reported success"
    [ -n "$why" ] || why=$(running_on h1 vm3) || true
    [ -n "$why" ] || counter_above h1 vm3 "${c0:-0}" || why="counter stuck"
    [ -n "$why" ] || why=$(memory_ok h1 vm3) || true
    left=$(on h2 "xl list 2>/dev/null | grep vm3" | awk '{print $1}' | tr '\n' ' ')
    after=""
    if [ -z "$why" ] && [ "$kind" = ours ]; then
        # Nothing in a process killed by SIGKILL can clean up: the incoming
        # domain it was building stays until a receiver starts again (as a
        # service manager restarts it). The new listener must remove it
        # before it listens, and the host be left with nothing of vm3.
        if ! ours_listen h2 tcp; then
            why="the listener did not start again: $OURS_ERR"
        else
            after=$(on h2 "xl list 2>/dev/null | grep vm3" | awk '{print $1}' | tr '\n' ' ')
            swept=$(on h2 "grep -a -c 'discarded the incoming vm3' /tmp/ours-recv.log")
            [ -z "$after" ] || why="left on h2 after the listener started again: $after"
            [ -n "$why" ] || [ -z "$left" ] || [ "${swept:-0}" -ge 1 ] ||
                why="$left was gone but the new listener did not say it removed it"
            after="; after the listener restarted: ${after:-nothing}${left:+ (it removed $left)}"
        fi
        ours_stop h2
    fi
    if [ -z "$why" ]; then
        result PASS s3-$kind "receiver killed mid-copy: sender rc=$rc, guest runs on h1 (counter $(counter_max h1 vm3)), memory verified; left on h2: ${left:-nothing}$after"
    else
        result FAIL s3-$kind "$why (sender rc=$rc: $(grep -a -i -E 'fail|error' /tmp/s3-mig.log | head -2 | tr '\n' ' '))"
    fi
    on h2 "xl destroy vm3--incoming 2>/dev/null; xl destroy vm3 2>/dev/null; true" >/dev/null
}
s3() {
    s3_one stock
    s3_one ours
    destroy_everywhere vm3
}

# 4. compatibility pre-flight: --check against host 2
# s4_check EXPECT(pass|fail) ID NAME: --check from the guest's host against the other
s4_check() {
    from=$(where_is "$3") || { result FAIL "$2" "no guest $3"; return; }
    to=$(other "$from")
    if ! ours_listen "$to" tcp; then
        result FAIL "$2" "$OURS_ERR"
        ours_stop "$to"
        return
    fi
    on "$from" "timeout 120 xl-migrate-live --check --transport tcp --psk $PSK $3 $(ip "$to"):8002 >/tmp/s4.log 2>&1"
    rc=$?
    ours_stop "$to"
    out=$(on "$from" 'head -5 /tmp/s4.log' | tr '\n' ' ')
    if [ "$1" = pass ]; then
        if [ $rc -eq 0 ]; then result PASS "$2" "$from->$to, same CPUs: check passes ($out)"; else result FAIL "$2" "rc=$rc: $out"; fi
    elif [ $rc -eq 3 ] && echo "$out" | grep -q -i -E 'ssse3|sse4[._]?1|sse4[._]?2|popcnt'; then
        result PASS "$2" "refused, naming the feature: $out"
    else
        result FAIL "$2" "expected exit 3 naming ssse3/sse4.1/sse4.2/popcnt, got rc=$rc: $out"
    fi
}

# copy_file FROM TO PATH: over the link, same path on both hosts
copy_file() {
    on "$2" "rm -f $3; e2e-prog daemon /tmp/copy.log /tmp/copy.pid socat -u TCP-LISTEN:8013,reuseaddr OPEN:$3,creat,trunc"
    wait_for 15 listening "$2" 8013 || return 1
    on "$1" "timeout 180 socat -u OPEN:$3 TCP:$(ip "$2"):8013" || return 1
    wait_for 30 on "$2" '! kill -0 $(cat /tmp/copy.pid) 2>/dev/null'
    [ "$(on "$2" "wc -c <$3")" = "$(on "$1" "wc -c <$3")" ]
}

# stock_save HOST NAME: xl save to /tmp/NAME.save (the domain is gone after it)
stock_save() {
    SR_C0=$(counter_max "$1" "$2")
    on "$1" "timeout 300 xl save $2 /tmp/$2.save >/tmp/save.log 2>&1" && return 0
    SR_OUT="xl save failed: $(on "$1" 'tail -2 /tmp/save.log' | tr '\n' ' ')"
    return 1
}

# move_restore FROM TO NAME: copy the saved image, xl restore it on TO. SR_RC, SR_OUT
move_restore() {
    if ! copy_file "$1" "$2" /tmp/"$3".save; then
        SR_RC=91 SR_OUT="copy to $2 failed"
        return
    fi
    on "$1" "rm -f /tmp/$3.save"
    on "$2" "timeout 300 e2e-prog nofds xl restore /tmp/$3.save >/tmp/restore.log 2>&1"
    SR_RC=$?
    SR_OUT=$(on "$2" "grep -a -i -E 'error|fail|cpuid|policy|incompat' /tmp/restore.log | head -4; rm -f /tmp/$3.save" | tr '\n' ' ')
}

# a guest for the scenarios that only need one: vm1 where s1 left it
guest1() { where_is vm1 || { create h1 vm1 >&2 && echo h1; }; }

s4a() {
    guest1 >/dev/null || { result FAIL s4-check-same-cpu "guest did not start"; return; }
    s4_check pass s4-check-same-cpu vm1
}
s4b() {
    create h1 vm4 || { result FAIL s4-check-missing-feature "guest did not start"; result FAIL s4-xen-restore-not-viable "guest did not start"; return; }
    info "CPU flags h1: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -E 'ssse3|sse4_1|sse4_2|popcnt' | tr '\n' ' ')/ h2: $(on h2 "grep -m1 '^flags' /proc/cpuinfo | grep -o -E 'ssse3|sse4_1|sse4_2|popcnt'" | tr '\n' ' ')"
    s4_check fail s4-check-missing-feature vm4
    # Is the move viable at all? Xen refusing the restore, or the guest not
    # surviving it, both say the check above is right to refuse.
    if ! stock_save h1 vm4; then
        result FAIL s4-xen-restore-not-viable "harness: $SR_OUT"
        return
    fi
    feats=$(glog h1 vm4 | sed -n 's/.*GUEST-CPU //p' | head -1)
    move_restore h1 h2 vm4
    if [ "$SR_RC" -eq 91 ]; then
        result FAIL s4-xen-restore-not-viable "harness: $SR_OUT"
    elif [ "$SR_RC" -ne 0 ] && ! exists_on h2 vm4; then
        result PASS s4-xen-restore-not-viable "xl restore on h2 refused the guest saved on h1 (rc=$SR_RC): $SR_OUT"
    else
        # Xen 4.17 compares only leaf counts when it sets a restored domain's
        # CPUID policy, not feature bits: it accepts, and the guest, which
        # booted using these features, has to cope without them
        sleep 10
        if why=$(running_on h2 vm4) && why=$(memory_ok h2 vm4); then
            result FAIL s4-xen-restore-not-viable "xl restore on h2 accepted the guest (booted with [$feats]) and it runs fine there: a refusal by --check would be over-cautious"
        else
            result PASS s4-xen-restore-not-viable "xl restore on h2 accepted the guest (rc=$SR_RC; no refusal by Xen 4.17) but the guest, booted on h1 with [$feats], does not survive on h2: $(echo "$why" | tr '\n' ' ')"
        fi
    fi
    destroy_everywhere vm4
}

# 5. stream conformance with Xen's own tools (vm1, from wherever it runs)
# 6. HVM (issue 9): an HVM guest (the test kernel booted directly by its
# device model, Debian's qemu-system-xen in dom0) moved by ours: QEMU's dirty
# log, its device state in the stream; counter continuous, memory verified
s6() {
    if ! create h1 vm6; then
        result FAIL s6-hvm "guest did not start: $(on h1 'tail -n 4 /var/log/xen/qemu-dm-vm6.log /var/log/xen/xl-vm6.log /tmp/create.out 2>&1' 2>&1 | tr '\n' ' ')"
        return
    fi
    from=$(where_is vm6)
    to=$(other "$from")
    if migrate_verified ours "$from" "$to" vm6 tcp >/tmp/why 2>&1; then
        result PASS s6-hvm "$from->$to in ${MIG_MS} ms, guest-seen downtime $(downtime "$MIG_T0" "$MIG_T1" vm6) ms, counter continuous, memory verified"
    else
        result FAIL s6-hvm "$from->$to: $(tr '\n' ' ' </tmp/why)"
    fi
}

s5() {
    from=$(guest1) || { result FAIL s5-stock-save-restore "guest did not start"; return; }
    to=$(other "$from")
    if ! stock_save "$from" vm1; then
        result FAIL s5-stock-save-restore "$SR_OUT"
        return
    fi
    info "xl save vm1 on $from: $(on "$from" 'wc -c </tmp/vm1.save') bytes"
    # our parser on an image written by stock 'xl save'
    on "$from" "timeout 120 xl-migrate-live inspect /tmp/vm1.save >/tmp/inspect.log 2>&1"
    rc=$?
    out=$(on "$from" 'head -3 /tmp/inspect.log' | tr '\n' ' ')
    if [ $rc -eq 0 ]; then
        result PASS s5-ours-reads-stock "xl-migrate-live inspect of xl save's image: $out"
    else
        result FAIL s5-ours-reads-stock "xl-migrate-live inspect FILE rc=$rc: $out"
    fi
    # control: the same image restored by stock xl on the other host
    move_restore "$from" "$to" vm1
    if [ "$SR_RC" -eq 0 ] && why=$(running_on "$to" vm1) && counter_above "$to" vm1 "${SR_C0:-0}" &&
        why=$(memory_ok "$to" vm1); then
        result PASS s5-stock-save-restore "control: xl save on $from, xl restore on $to, counter continuous, memory verified"
    else
        result FAIL s5-stock-save-restore "rc=$SR_RC $SR_OUT $why"
    fi
    # stock 'xl restore' of an image written by our stream writer
    on "$to" "timeout 300 xl-migrate-live save vm1 /tmp/ours.save >/tmp/osave.log 2>&1"
    rc=$?
    if [ $rc -ne 0 ]; then
        result FAIL s5-stock-reads-ours "xl-migrate-live save DOMAIN FILE rc=$rc: $(on "$to" 'head -2 /tmp/osave.log' | tr '\n' ' ')"
    else
        c0=$(counter_max "$to" vm1)
        on "$to" "xl destroy vm1 2>/dev/null; timeout 300 e2e-prog nofds xl restore /tmp/ours.save >/tmp/orestore.log 2>&1"
        rc=$?
        if [ $rc -eq 0 ] && why=$(running_on "$to" vm1) && counter_above "$to" vm1 "${c0:-0}" && why=$(memory_ok "$to" vm1); then
            result PASS s5-stock-reads-ours "xl restore accepted our image, guest continues, memory verified"
        else
            result FAIL s5-stock-reads-ours "xl restore rc=$rc: $(on "$to" 'tail -2 /tmp/orestore.log' | tr '\n' ' ') $why"
        fi
    fi
    on "$to" 'rm -f /tmp/ours.save'
    destroy_everywhere vm1
}

# --- driver -------------------------------------------------------------------
budget() {
    # 2-4x what they took on a 2-core machine shared with other work (load
    # average 3-7: s1 75 s, s2 250-310 s, s3 113 s, s4b 77 s, s5 56 s), times
    # e2e.slow (XEN_E2E_SLOW, in percent)
    case $1 in s6) _b=600 ;; s1) _b=300 ;; s2) _b=600 ;; s3) _b=300 ;; s4a) _b=120 ;; s4b) _b=300 ;; s5) _b=240 ;; *) _b=120 ;; esac
    echo $((_b * ${E2E_SLOW:-100} / 100))
}

if [ "${1:-}" = run ]; then
    "$2"
    exit 0
fi

PHASE=${1:-A}
case $PHASE in
A) LIST=${E2E_ONLY:-"s1 s4a s5 s2 s3 s6"} ;;
B) LIST=${E2E_ONLY:-"s4b"} ;;
*) LIST=$PHASE ;;
esac
# h2 must answer; then set its clock to ours (guest timestamps from both hosts compare)
if ! wait_for 120 on h2 true; then
    info "host 2 does not answer on the link"
    for s in $LIST; do result FAIL "$s" "host 2 unreachable"; done
    exit 1
fi
on h2 "e2e-prog clocksync 10.99.0.1 7001 set && e2e-prog clocksync 10.99.0.1 7001 measure" | sed 's/^/E2E-INFO h2 /'
info "migrate-live in dom0: $(xl-migrate-live --version 2>&1 | head -1)"
exec 3>&1
for s in $LIST; do
    b=$(budget "$s")
    echo "E2E-BEGIN $s budget=$b"
    t0=$(now)
    timeout -s KILL "$b" /e2e/scenarios.sh run "$s"
    rc=$?
    if [ $rc -ne 0 ]; then
        result FAIL "$s-timeout" "scenario $s stopped after ${b}s (rc=$rc)"
        diag
        for n in vm1 vm2 vm3 vm4; do destroy_everywhere $n; done
    fi
    on h2 'kill $(cat /tmp/ours-recv.pid /tmp/stock-recv.pid /tmp/recv.pid 2>/dev/null) 2>/dev/null; true' >/dev/null
    echo "E2E-END $s $(($(now) - t0)) ms"
done
