#!/bin/bash
# fetch-debs.sh: install what the Xen end-to-end test needs on this machine
# (QEMU, busybox, cpio, gcc for the static guest programs) and download, never
# install, the Debian packages that go into the images: Xen 4.17 hypervisor and
# tools, their libraries, socat, Debian's kernel (dom0 and guest), and any
# XEN_E2E_EXTRA_PKGS (e.g. "openvswitch-switch nbd-client qemu-system-xen").
# Debs are cached in $CACHE/debs; a rerun downloads only what is missing.
set -euo pipefail
CACHE=${XEN_E2E_CACHE:-/var/tmp/migrate-live-xen-e2e}
mkdir -p "$CACHE/debs"
if [ "$(id -u)" -ne 0 ]; then
    echo "fetch-debs.sh: run as root (installs qemu-system-x86 and friends)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
need_host=""
for p in qemu-system-x86 busybox-static cpio gzip gcc libc6-dev openssl socat; do
    dpkg -s "$p" >/dev/null 2>&1 || need_host="$need_host $p"
done
if [ -n "$need_host" ] || [ ! -e /var/lib/apt/lists/lock ] || [ -z "$(ls /var/lib/apt/lists/*Packages* 2>/dev/null)" ]; then
    apt-get update -q
fi
if [ -n "$need_host" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $need_host
fi
# The kernel package name changes with point releases: take it from the meta package.
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$KPKG" ]; then
    apt-get update -q
    KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$KPKG" ] || { echo "fetch-debs.sh: cannot resolve linux-image-amd64" >&2; exit 1; }
PKGS="xen-utils-4.17 xen-hypervisor-4.17-amd64 xen-utils-common xenstore-utils libxencall1
  libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4 libxentoollog1
  libyajl2 libxenhypfs1 libxentoolcore1 libxendevicemodel1 socat libwrap0 $KPKG
  qemu-system-xen seabios qemu-system-data ${XEN_E2E_EXTRA_PKGS:-}"
cd "$CACHE/debs"
need=""
for p in $PKGS; do
    ls "${p}"_*.deb >/dev/null 2>&1 && continue
    c=$(ls /var/cache/apt/archives/"${p}"_*.deb 2>/dev/null | head -1 || true)
    if [ -n "$c" ]; then cp "$c" .; else need="$need $p"; fi
done
# shellcheck disable=SC2086
[ -z "$need" ] || apt-get download -q $need
echo "$KPKG" >"$CACHE/kernel-package"
ls "$CACHE/debs" | wc -l | sed 's/$/ debs cached/'
