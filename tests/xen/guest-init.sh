#!/bin/sh
# /init of the test guest (PVH, Debian's kernel, busybox). Everything goes to
# hvc0, which xenconsoled logs in dom0. Words on the kernel command line:
#   e2e.mem=MB               memory pattern check (MEM-OK / MEM-BAD)
#   e2e.load=MB e2e.rate=R   write load over MB at R MB/s, self-checked (LOAD-OK / LOAD-BAD)
# Always: the counter (GUEST-COUNTER n uptime=s, once a second: a restart
# would show 0 again) and the downtime probe (PROBE-GAP, PROBE-HB).
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec >/dev/hvc0 2>&1
arg() { sed -n "s/.*e2e\.$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
MEM=$(arg mem)
LOAD=$(arg load)
RATE=$(arg rate)
# how much room the guest programs have (XEN_E2E_GUEST_MB), before they take it
echo "GUEST-MEM $(awk '/^(MemTotal|MemAvailable):/ {printf "%s %d MiB ", $1, $2 / 1024}' /proc/meminfo)"
/bin/e2e-prog probe &
[ -n "$MEM" ] && /bin/e2e-prog memcheck "$MEM" &
[ -n "$LOAD" ] && /bin/e2e-prog load "$LOAD" "${RATE:-8}" &
# the CPU features scenario 4 is about, as this guest's kernel saw them at boot
echo "GUEST-CPU $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(ssse3|sse4_1|sse4_2|popcnt)$' | tr '\n' ' ')"
i=0
while true; do
    echo "GUEST-COUNTER $i uptime=$(cut -d' ' -f1 /proc/uptime)"
    i=$((i + 1))
    sleep 1
done
