#!/bin/bash
# build-images.sh BUILDDIR LAB: the images of the Xen end-to-end test, from
# the debs fetch-debs.sh cached (unpacked, never installed here):
#   LAB/img/xen            Xen 4.17 (the plain ELF32 that QEMU's multiboot loads)
#   LAB/img/vmlinuz        Debian's kernel (dom0 and guest)
#   LAB/img/dom0-initrd.gz busybox dom0: xl, xenstored, xenconsoled + libraries,
#                          socat, this project's build ('make install DESTDIR'
#                          plus the libraries ldd names, an ld.so.cache), the
#                          xl wrapper, e2e-prog, the scenario script, the guest
#                          kernel and initrd, a PSK and a TLS PKI made here
#   LAB/img/guest-initrd.gz busybox guest: counter, downtime probe, memory
#                          pattern check, write load (tests/xen/e2e-prog.c)
set -euo pipefail
BUILD=$(cd "$1" && pwd)
LAB=$2
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XEN_E2E_CACHE:-/var/tmp/migrate-live-xen-e2e}
T0=$(date +%s)
mkdir -p "$LAB"
rm -rf "$LAB/stage" "$LAB/img" "$LAB/rootfs-guest" "$LAB/rootfs-dom0" "$LAB/destdir" "$LAB/pki"
mkdir -p "$LAB/stage" "$LAB/img"
for d in "$CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$LAB/stage"; done
KV=$(ls "$LAB/stage/lib/modules" | head -1)
zcat "$LAB/stage/boot/xen-4.17-amd64.gz" >"$LAB/img/xen"
cp "$LAB/stage/boot/vmlinuz-$KV" "$LAB/img/vmlinuz"
gcc -O2 -Wall -static -o "$LAB/img/e2e-prog" "$HERE/e2e-prog.c"

mkbb() { # static busybox and its applet links in root dir $1
    mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root}
    cp /bin/busybox "$1/bin/busybox"
    for a in $(/bin/busybox --list-full); do [ -e "$1/$a" ] || ln -s /bin/busybox "$1/$a"; done
}

### guest
G=$LAB/rootfs-guest
mkbb "$G"
cp "$LAB/img/e2e-prog" "$G/bin/e2e-prog"
cp "$HERE/guest-init.sh" "$G/init"
chmod +x "$G/init"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -1) >"$LAB/img/guest-initrd.gz"

### dom0
R=$LAB/rootfs-dom0
mkbb "$R"
XB=/usr/lib/xen-4.17/bin
mkdir -p "$R$XB" "$R/usr/lib/xen-common/bin" "$R/usr/lib/x86_64-linux-gnu" "$R/lib64" "$R/etc/xen" \
    "$R/lib/modules/xen" "$R/var/lib/xen" "$R/var/lib/xenstored" "$R/var/log/xen/console" "$R/var/lock" \
    "$R/guest" "$R/var/lib/migrate-live" "$R/etc/pki/migrate-live" "$R/e2e"
cp -a "$LAB/stage$XB/." "$R$XB/"
# HVM guests (s6): hvmloader; the device model (qemu-system-xen), the BIOS
# and option ROMs it loads (seabios, qemu-system-data) come with the loop below
mkdir -p "$R/usr/lib/xen-4.17/boot"
cp -a "$LAB/stage/usr/lib/xen-4.17/boot/hvmloader" "$R/usr/lib/xen-4.17/boot/"
cp -a "$LAB/stage/usr/lib/xen-common/bin/." "$R/usr/lib/xen-common/bin/"
cp -a "$LAB/stage/usr/lib/x86_64-linux-gnu/." "$R/usr/lib/x86_64-linux-gnu/"
cp -a "$LAB/stage/etc/xen/." "$R/etc/xen/"
for b in xl xenstored xenconsoled xentop; do ln -sf ../lib/xen-common/bin/xen-utils-wrapper "$R/usr/sbin/$b"; done
cp -a "$LAB/stage/usr/bin/socat" "$R/usr/bin/"
for b in xenstore xenstore-ls xenstore-read xenstore-write xenstore-list; do
    cp -a "$LAB/stage/usr/bin/$b" "$R/usr/bin/" 2>/dev/null || true
done
rm -f "$R$XB/pygrub" "$R$XB/xenpvnetboot" # python, not needed
# Extra packages for later scenarios (XEN_E2E_EXTRA_PKGS in fetch-debs.sh): their
# files come along from the staging tree.
for d in usr/bin usr/sbin sbin bin usr/lib/openvswitch usr/libexec usr/share/seabios usr/share/qemu; do
    [ -d "$LAB/stage/$d" ] || continue
    case $d in bin|sbin|usr/bin|usr/sbin)
        for f in "$LAB/stage/$d"/*; do
            [ -e "$R/$d/$(basename "$f")" ] || cp -a "$f" "$R/$d/"
        done ;;
    *) mkdir -p "$R/$d"; cp -a "$LAB/stage/$d/." "$R/$d/" ;;
    esac
done

# This project: the real install of the build tree, wrapper included.
make -s -C "$BUILD" install install-xl-wrapper DESTDIR="$LAB/destdir" >/dev/null
cp -a "$LAB/destdir/." "$R/"
rm -rf "$R/usr/local/share/man" "$R/usr/local/include"
find "$R/usr/local/lib" -name '*.la' -delete 2>/dev/null || true

# Shared libraries from this machine (same Debian release) for every program.
for f in $(find "$R$XB" "$R/usr/bin" "$R/usr/sbin" "$R/usr/local/sbin" "$R/usr/local/bin" "$R/usr/libexec" -type f -perm -u+x 2>/dev/null) \
    $(find "$R/usr/lib/x86_64-linux-gnu" "$R/usr/local/lib" -name '*.so*' -type f 2>/dev/null); do
    LD_LIBRARY_PATH=$R/usr/local/lib:$R/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null |
        awk '/=> \//{print $3} /^\t\/lib64/{print $1}' || true
done | sort -u | while read -r lib; do
    case $lib in "$R"/*) continue ;; esac
    dst=$R/usr/lib/x86_64-linux-gnu/$(basename "$lib")
    [ -e "$dst" ] || cp "$(readlink -f "$lib")" "$dst"
done
missing=$(LD_LIBRARY_PATH=$R/usr/local/lib:$R/usr/lib/x86_64-linux-gnu ldd "$R/usr/local/sbin/xl-migrate-live" | grep 'not found' || true)
[ -z "$missing" ] || { echo "build-images.sh: xl-migrate-live misses libraries: $missing" >&2; exit 1; }
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/usr/lib/x86_64-linux-gnu/" # glibc dlopen()s it (pthread_cancel)
ln -s ../usr/lib/x86_64-linux-gnu "$R/lib/x86_64-linux-gnu"
printf '/usr/local/lib\n/usr/lib/x86_64-linux-gnu\n' >"$R/etc/ld.so.conf"
ldconfig -r "$R" 2>/dev/null || ldconfig -r "$R"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs failover net_failover virtio_ring virtio \
    virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net virtio-rng; do
    cp "$(find "$LAB/stage/lib/modules/$KV" -name "$m.ko" | head -1)" "$R/lib/modules/xen/"
done
rm -rf "$R/var/run"
ln -s /run "$R/var/run"
echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"
printf '127.0.0.1 localhost\n10.99.0.1 h1\n10.99.0.2 h2\n' >"$R/etc/hosts"
cp "$LAB/img/vmlinuz" "$R/guest/vmlinuz"
cp "$LAB/img/guest-initrd.gz" "$R/guest/initrd.gz"
cp "$LAB/img/e2e-prog" "$R/usr/bin/e2e-prog"

# Credentials made by the test: a PSK for tcp:, a PKI for tls: whose server
# certificate names both hosts (same files on both, as an admin would copy them).
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$R/etc/migrate-live.psk"
echo >>"$R/etc/migrate-live.psk"
chmod 600 "$R/etc/migrate-live.psk"
P=$LAB/pki
mkdir -p "$P"
(
    cd "$P"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca.key
    openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=xen-e2e CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    leaf() { # NAME CN EXT
        key "$1.key"
        openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
        printf '%s\n' "$3" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -out "$1.pem" -extfile "$1.ext" 2>/dev/null
    }
    leaf server h2 "subjectAltName=DNS:h1,DNS:h2,IP:10.99.0.1,IP:10.99.0.2
extendedKeyUsage=serverAuth"
    leaf client h1 "extendedKeyUsage=clientAuth"
)
cp "$P/ca.pem" "$R/etc/pki/migrate-live/cacert.pem"
cp "$P/server.pem" "$R/etc/pki/migrate-live/servercert.pem"
cp "$P/server.key" "$R/etc/pki/migrate-live/serverkey.pem"
cp "$P/client.pem" "$R/etc/pki/migrate-live/clientcert.pem"
cp "$P/client.key" "$R/etc/pki/migrate-live/clientkey.pem"
chmod 600 "$R"/etc/pki/migrate-live/*key.pem

# Guests: vm1..vm4, 128 MiB PVH (XEN_E2E_GUEST_MB), the same kernel and
# initrd; the e2e.* words on the command line pick the guest programs
# (guest-init.sh). Debian's kernel alone takes about 46 MiB (code, data,
# bss): it does not boot in 64, and in 96 the memory check does not start.
mkcfg() { # NAME EXTRA
    cat >"$R/etc/xen/$1.cfg" <<GC
name = "$1"
type = "pvh"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initrd.gz"
extra = "console=hvc0 quiet $2"
memory = ${XEN_E2E_GUEST_MB:-128}
vcpus = 1
on_crash = "preserve"
GC
}
mkcfg vm1 "e2e.mem=16"
mkcfg vm2 "e2e.mem=8 e2e.load=${XEN_E2E_LOAD_MB:-16} e2e.rate=${XEN_E2E_LOAD_RATE:-4}"
mkcfg vm3 "e2e.mem=16 e2e.load=8 e2e.rate=2"
mkcfg vm4 "e2e.mem=16"
# vm6: HVM, the same kernel and initrd booted by the device model (s6)
cat >"$R/etc/xen/vm6.cfg" <<GC
name = "vm6"
type = "hvm"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initrd.gz"
extra = "console=hvc0 quiet e2e.mem=16"
memory = ${XEN_E2E_GUEST_MB:-128}
vcpus = 1
vnc = 0
sdl = 0
vga = "none"
serial = "none"
on_crash = "preserve"
GC
cp "$HERE/dom0-init.sh" "$R/init"
cp "$HERE/dom0-e2e.sh" "$R/e2e/scenarios.sh"
chmod +x "$R/init" "$R/e2e/scenarios.sh"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$LAB/img/dom0-initrd.gz"
rm -rf "$LAB/stage" "$LAB/rootfs-guest" "$LAB/rootfs-dom0" "$LAB/destdir"
echo "images: $(du -sh "$LAB/img" | cut -f1) in $LAB/img, built in $(($(date +%s) - T0))s"
