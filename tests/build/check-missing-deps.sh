#!/bin/bash
# configure must stop with a message naming the Debian package whenever one
# dependency is hidden. Each .pc file is hidden in turn by pointing
# PKG_CONFIG_LIBDIR at a folder holding links to every other .pc file.
set -eu
srcdir=${top_srcdir:?top_srcdir not set}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pcdirs=$(pkg-config --variable pc_path pkg-config | tr ':' ' ')

# .pc name -> Debian package that configure must name
cases="yaml-0.1:libyaml-dev openssl:libssl-dev libzstd:libzstd-dev cmocka:libcmocka-dev \
xencontrol:libxen-dev xenlight:libxen-dev xenforeignmemory:libxen-dev xenstore:libxen-dev \
xenguest:libxen-dev xentoollog:libxen-dev"

pass=0
fail=0
for c in $cases; do
    pc=${c%%:*}
    pkg=${c#*:}
    libdir=$work/pc-$pc
    mkdir -p "$libdir"
    for d in $pcdirs; do
        [ -d "$d" ] || continue
        for f in "$d"/*.pc; do
            [ -e "$f" ] || continue
            [ "$(basename "$f")" = "$pc.pc" ] && continue
            [ -e "$libdir/$(basename "$f")" ] || ln -s "$f" "$libdir/"
        done
    done
    # openssl.pc requires libssl/libcrypto: hide those too so the check bites.
    [ "$pc" = openssl ] && rm -f "$libdir/libssl.pc" "$libdir/libcrypto.pc"
    build=$work/build-$pc
    mkdir -p "$build"
    if (cd "$build" && PKG_CONFIG_LIBDIR=$libdir PKG_CONFIG_PATH= "$srcdir/configure" \
            --cache-file=/dev/null >out.log 2>&1); then
        echo "FAIL: configure succeeded with $pc.pc hidden"
        fail=$((fail + 1))
    elif grep -q "apt-get install $pkg" "$build/out.log"; then
        echo "PASS: hiding $pc.pc -> configure names $pkg"
        pass=$((pass + 1))
    else
        echo "FAIL: hiding $pc.pc: configure failed without naming $pkg:"
        tail -5 "$build/out.log"
        fail=$((fail + 1))
    fi
done
# --without-xen does not need the Xen libraries.
libdir=$work/pc-xencontrol
build=$work/build-noxen
mkdir -p "$build"
if (cd "$build" && PKG_CONFIG_LIBDIR=$libdir PKG_CONFIG_PATH= "$srcdir/configure" \
        --cache-file=/dev/null --without-xen >out.log 2>&1); then
    echo "PASS: --without-xen configures without Xen libraries"
    pass=$((pass + 1))
else
    echo "FAIL: --without-xen still needs Xen"; tail -5 "$build/out.log"
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
