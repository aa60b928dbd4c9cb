#!/bin/sh
# gen-certs.sh DIR: a throwaway PKI for tests and benchmarks, with libvirt's
# file names. DIR/good: CA, server (localhost, 127.0.0.1, ::1) and client
# certificates of one CA. DIR/evil: trusts the same CA but its client
# certificate comes from another CA (must be refused). DIR/wronghost: a
# server certificate of the same CA naming only other.example (a client
# connecting to 127.0.0.1 must refuse it).
set -eu
d=$1
mkdir -p "$d/good" "$d/evil" "$d/wronghost" "$d/work"
cd "$d/work"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # ca NAME
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # leaf CA NAME CN EXT
    key "$2.key"
    openssl req -new -key "$2.key" -out "$2.csr" -subj "/CN=$3"
    printf '%s\n' "$4" > "$2.ext"
    openssl x509 -req -in "$2.csr" -CA "$1.pem" -CAkey "$1.key" -CAcreateserial -days 2 \
        -out "$2.pem" -extfile "$2.ext" 2>/dev/null
}
ca ca1
ca ca2
leaf ca1 server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
leaf ca1 client client.test "extendedKeyUsage=clientAuth"
leaf ca2 evil evil.test "extendedKeyUsage=clientAuth"
leaf ca1 other other.example "subjectAltName=DNS:other.example
extendedKeyUsage=serverAuth"
cp ca1.pem ../good/cacert.pem
cp server.pem ../good/servercert.pem
cp server.key ../good/serverkey.pem
cp client.pem ../good/clientcert.pem
cp client.key ../good/clientkey.pem
cp ca1.pem ../evil/cacert.pem
cp evil.pem ../evil/clientcert.pem
cp evil.key ../evil/clientkey.pem
cp ca1.pem ../wronghost/cacert.pem
cp other.pem ../wronghost/servercert.pem
cp other.key ../wronghost/serverkey.pem
