#!/bin/sh
# /init of the dom0 initramfs of the Xen end-to-end test. Kernel command line:
#   e2e.role=h1|h2   h1 drives the scenarios; h2 serves commands from h1
#   e2e.ip=ADDR      this host's address on the link between the two QEMUs
#   e2e.phase=NAME   which scenarios h1 runs (scenarios.sh)
#   e2e.shell        a shell on the console at the end (interactive use)
# Everything printed here reaches the QEMU serial log through Xen's console;
# the host side (run.sh) reads the E2E lines from it.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /run/lock
opt() { sed -n "s/.*e2e\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
up() { cut -d' ' -f1 /proc/uptime; }
ROLE=$(opt role)
IP=$(opt ip)
echo "E2E-MARK dom0-init role=$ROLE uptime=$(up)"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do insmod /lib/modules/xen/$m.ko; done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file=/run/xenstored.pid
xen-init-dom0 >/dev/null
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
hostname "$ROLE"
# virtio-rng: without it the kernel's random pool takes ~90 s under TCG and
# OpenSSL (tls:) blocks in getrandom() until then
for m in failover net_failover virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net virtio-rng; do
    insmod /lib/modules/xen/$m.ko 2>/dev/null
done
ifconfig lo 127.0.0.1 up
n=0
until ifconfig eth0 "$IP" netmask 255.255.255.0 up 2>/dev/null; do
    n=$((n + 1))
    [ $n -gt 20 ] && { echo "E2E-MARK FATAL no eth0"; break; }
    sleep 0.5
done
# Xen's wallclock = this dom0's clock (guests start from it)
e2e-prog clockpush
echo "E2E-MARK xen-tools-up uptime=$(up) $(xl info | grep -E '^(xen_version|free_memory|virt_caps)' | tr -s ' ' | tr '\n' ' ')"
echo "E2E-MARK cpu-flags $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2 | tr ' ' '\n' | grep -E '^(ssse3|sse4_1|sse4_2|popcnt)$' | tr '\n' ' ')"
case "$ROLE" in
h2)
    # h1 runs commands here: one shell per connection (scenarios.sh 'on h2')
    # -t: after h1 closed its side, wait for the command to finish (default 0.5 s)
    socat -t 900 TCP-LISTEN:7000,reuseaddr,fork EXEC:/bin/sh,stderr </dev/null >/tmp/ctl.log 2>&1 &
    echo "E2E-MARK h2-ready uptime=$(up)"
    if grep -q e2e.shell /proc/cmdline; then setsid cttyhack sh; fi
    # stay up until h1 is done (run.sh stops this QEMU)
    while true; do sleep 3600; done
    ;;
h1)
    e2e-prog clockserve 7001 </dev/null >/tmp/clockserve.log 2>&1 &
    E2E_ONLY=$(opt only | tr + ' ') E2E_SLOW=$(opt slow) /e2e/scenarios.sh "$(opt phase)"
    echo "E2E-MARK scenarios-exit rc=$? uptime=$(up)"
    ;;
esac
if grep -q e2e.shell /proc/cmdline; then setsid cttyhack sh; fi
poweroff -f
