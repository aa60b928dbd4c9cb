#!/usr/bin/env python3
"""nbd-malformed.py SOCKET SIZE: a hostile NBD client for t-nbd-server.sh.

Sends what real clients never send (bad magics, unknown flags, out-of-range
offsets, oversized lengths, unknown commands, truncated messages, garbage)
and checks the server answers each with the protocol's error (or drops the
connection where the protocol says it must), and that a well-formed request
on the same connection still works afterwards. Prints one line per check;
exits 1 on the first failure.
"""
import os
import socket
import struct
import sys

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x3E889045565A9
REQ = 0x25609513
SIMPLE = 0x67446698
OPT_GO, OPT_ABORT, OPT_STRUCTURED_REPLY = 7, 2, 8
REP_ACK, REP_INFO = 1, 3
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_WZ, CMD_BS = range(8)
FLAG_FUA, FLAG_NO_HOLE, FLAG_DF = 1, 2, 4
EPERM, EINVAL, ENOSPC, EOVERFLOW = 1, 22, 28, 75

sock_path, size = sys.argv[1], int(sys.argv[2])
checks = 0


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def ok(msg):
    global checks
    checks += 1
    print("ok", msg)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("server closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def closed(s):
    """True if the server closed the connection (EOF, or a reset)."""
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    magic, ihaveopt, hflags = struct.unpack(">QQH", recv_exact(s, 18))
    if magic != NBDMAGIC or ihaveopt != IHAVEOPT or hflags != 3:
        fail("greeting %x %x %x" % (magic, ihaveopt, hflags))
    return s


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def replies(s, opt):
    """Option replies up to the final one; returns [(type, data)]."""
    out = []
    while True:
        magic, o, typ, ln = struct.unpack(">QIII", recv_exact(s, 20))
        if magic != REPMAGIC or o != opt:
            fail("option reply header %x %d" % (magic, o))
        out.append((typ, recv_exact(s, ln)))
        if typ != REP_INFO and typ != 2:  # INFO and SERVER are not final
            return out


def go(s):
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    option(s, OPT_STRUCTURED_REPLY)
    if replies(s, OPT_STRUCTURED_REPLY)[-1][0] != 0x80000001:
        fail("STRUCTURED_REPLY not answered ERR_UNSUP")
    option(s, OPT_GO, struct.pack(">IH", 0, 0))
    r = replies(s, OPT_GO)
    if r[-1][0] != REP_ACK:
        fail("GO not acknowledged: %r" % (r,))
    for typ, d in r[:-1]:
        if struct.unpack(">H", d[:2])[0] == 0:
            exp_size, tflags = struct.unpack(">QH", d[2:])
            if exp_size != size:
                fail("export size %d, expected %d" % (exp_size, size))
            return tflags
    fail("GO without NBD_INFO_EXPORT")


def request(s, typ, off, ln, flags=0, cookie=0x1234, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQ, flags, typ, cookie, off, ln) + payload)


def reply(s, cookie=0x1234):
    magic, err, c = struct.unpack(">IIQ", recv_exact(s, 16))
    if magic != SIMPLE or c != cookie:
        fail("reply header magic %x cookie %x" % (magic, c))
    return err


def expect_err(s, what, typ, off, ln, err, flags=0, payload=b""):
    request(s, typ, off, ln, flags, payload=payload)
    got = reply(s)
    if got != err:
        fail("%s: error %d, expected %d" % (what, got, err))
    ok("%s -> %d" % (what, err))


def expect_alive(s, what):
    """A valid write + read on the same connection still works."""
    data = os.urandom(4096)
    request(s, CMD_WRITE, 8192, 4096, FLAG_FUA, cookie=7, payload=data)
    if reply(s, 7) != 0:
        fail("write after %s" % what)
    request(s, CMD_READ, 8192, 4096, cookie=8)
    if reply(s, 8) != 0 or recv_exact(s, 4096) != data:
        fail("read after %s" % what)
    ok("connection still serves after " + what)


# Transmission-phase errors, all on one connection.
s = connect()
go(s)
expect_err(s, "read past the end", CMD_READ, size, 1, EINVAL)
expect_err(s, "read straddling the end", CMD_READ, size - 512, 1024, EINVAL)
expect_err(s, "read at offset 2^64-1", CMD_READ, 2**64 - 1, 2, EINVAL)
expect_err(s, "write past the end", CMD_WRITE, size - 1, 2, ENOSPC, payload=b"xx")
expect_err(s, "write-zeroes past the end", CMD_WZ, size, 4096, ENOSPC)
expect_err(s, "trim past the end", CMD_TRIM, size - 1, 4096, EINVAL)
expect_err(s, "read of 4 GiB - 1", CMD_READ, 0, 0xFFFFFFFF, EOVERFLOW)
expect_err(s, "read of 32 MiB + 1", CMD_READ, 0, (32 << 20) + 1, EOVERFLOW)
# an oversized write: its 33 MiB payload is drained, not stored
big = (33 << 20)
expect_err(s, "write of 33 MiB", CMD_WRITE, 0, big, EOVERFLOW, payload=b"\xee" * big)
expect_err(s, "unknown command 99", 99, 0, 1, EINVAL)
expect_err(s, "CACHE (not advertised)", CMD_CACHE, 0, 1, EINVAL)
expect_err(s, "BLOCK_STATUS (no meta context)", CMD_BS, 0, 4096, EINVAL)
expect_err(s, "read with DF (no structured replies)", CMD_READ, 0, 512, EINVAL, FLAG_DF)
expect_err(s, "write with NO_HOLE", CMD_WRITE, 0, 4, EINVAL, FLAG_NO_HOLE, b"abcd")
expect_err(s, "unknown flag 0x4000", CMD_READ, 0, 512, EINVAL, 0x4000)
expect_err(s, "flush with an offset", CMD_FLUSH, 4096, 0, EINVAL)
expect_alive(s, "every refusal above")
# the drained payload did not land
request(s, CMD_READ, 0, 4096, cookie=9)
if reply(s, 9) != 0 or b"\xee" in recv_exact(s, 4096):
    fail("a refused write's payload reached the disk")
ok("refused payloads never reach the disk")
request(s, CMD_DISC, 0, 0)
if not closed(s):
    fail("DISC did not close the connection")
ok("DISC closes the connection")

# Bad request magic: the stream cannot be resynchronised; dropped.
s = connect()
go(s)
s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, CMD_READ, 1, 0, 512))
if not closed(s):
    fail("bad request magic did not drop the connection")
ok("bad request magic drops the connection")

# A request cut short, then EOF: the server just ends that connection.
s = connect()
go(s)
s.sendall(struct.pack(">IHH", REQ, 0, CMD_WRITE))
s.shutdown(socket.SHUT_WR)
if not closed(s):
    fail("truncated request")
ok("truncated request ends the connection")

# A write whose payload never comes.
s = connect()
go(s)
request(s, CMD_WRITE, 0, 65536, payload=b"\x01" * 100)
s.shutdown(socket.SHUT_WR)
if not closed(s):
    fail("truncated payload")
ok("truncated payload ends the connection")

# Handshake violations.
s = connect()
s.sendall(struct.pack(">I", 0x100))
if not closed(s):
    fail("unknown client flags accepted")
ok("unknown client flags drop the connection")

s = connect()
s.sendall(struct.pack(">I", 3) + struct.pack(">QII", 0x1122334455667788, OPT_GO, 0))
if not closed(s):
    fail("bad option magic accepted")
ok("bad option magic drops the connection")

s = connect()
s.sendall(struct.pack(">I", 3))
option(s, 1, b"no-such-export")  # NBD_OPT_EXPORT_NAME cannot fail politely
if not closed(s):
    fail("EXPORT_NAME of an unknown export")
ok("EXPORT_NAME of an unknown export drops the connection")

s = connect()
s.sendall(struct.pack(">I", 3))
option(s, OPT_GO, struct.pack(">I", 5) + b"other" + struct.pack(">H", 0))
if replies(s, OPT_GO)[-1][0] != 0x80000006:
    fail("GO of an unknown export not ERR_UNKNOWN")
option(s, OPT_GO, struct.pack(">I", 1000))  # name longer than the option
if replies(s, OPT_GO)[-1][0] != 0x80000003:
    fail("GO with a bad name length not ERR_INVALID")
s.sendall(struct.pack(">QII", IHAVEOPT, 99, 200000) + b"\0" * 200000)
if replies(s, 99)[-1][0] != 0x80000009:
    fail("a 200 kB option not ERR_TOO_BIG")
option(s, OPT_ABORT)
if replies(s, OPT_ABORT)[-1][0] != REP_ACK:
    fail("ABORT not acknowledged")
ok("GO errors, an oversized option and ABORT answered in the handshake")

# Garbage from the first byte.
s = connect()
s.sendall(os.urandom(4096))
closed(s)
ok("random bytes after the greeting: the server ends that connection")

# Read-only checks happen in the shell test; finally, a clean session works.
s = connect()
go(s)
expect_alive(s, "all the hostile connections")
request(s, CMD_DISC, 0, 0)
print("nbd-malformed: %d checks passed" % checks)
