#!/usr/bin/env python3
"""shrink-image.py IN OUT: a small test fixture from a real `xl save` image.

Keeps the xl header, the xl configuration, the libxl and libxc headers and
every record except PAGE_DATA verbatim; of the PAGE_DATA records it keeps
the first two pages of the first one (with their data) and a few entries of
the first record that holds pages without data (holes, XTAB), each record's
count rewritten. The result is still a stream xl's reader would accept in
shape, some KiB instead of the guest's size (tests/fixtures/xen/README.md).
"""
import struct
import sys

PAGE = 4096


def records(d, p):
    """(type, body, next) of the record at p."""
    t, n = struct.unpack_from('<II', d, p)
    return t, d[p + 8:p + 8 + n], p + 8 + ((n + 7) & ~7)


def record(t, body):
    pad = (-len(body)) % 8
    return struct.pack('<II', t, len(body)) + body + b'\0' * pad


def page_record(body, want):
    """A PAGE_DATA body of the entries 'want' picks (index -> bool)."""
    count = struct.unpack_from('<I', body)[0]
    words = [struct.unpack_from('<Q', body, 8 + 8 * i)[0] for i in range(count)]
    data_at = 8 + 8 * count
    keep_w, keep_d = [], b''
    for i, w in enumerate(words):
        has_data = (w >> 60) not in (0xd, 0xe, 0xf)
        if want(i, w):
            keep_w.append(w)
            if has_data:
                keep_d += body[data_at:data_at + PAGE]
        if has_data:
            data_at += PAGE
    out = struct.pack('<II', len(keep_w), 0) + b''.join(struct.pack('<Q', w) for w in keep_w)
    return out + keep_d


def main():
    d = open(sys.argv[1], 'rb').read()
    optlen = struct.unpack_from('<I', d, 44)[0]
    p = 48 + optlen + 16  # xl header, its optional data, libxl header
    out = bytearray(d[:p])
    t, body, p = records(d, p)
    assert t == 1, 'LIBXC_CONTEXT expected'
    out += record(t, body)
    out += d[p:p + 40]  # libxc image and domain headers
    p += 40
    took_data = took_holes = False
    while True:
        t, body, p = records(d, p)
        if t == 1:
            words = [struct.unpack_from('<Q', body, 8 + 8 * i)[0]
                     for i in range(struct.unpack_from('<I', body)[0])]
            if not took_data:
                out += record(t, page_record(body, lambda i, w: i < 2))
                took_data = True
            elif not took_holes and any(w >> 60 == 0xf for w in words):
                out += record(t, page_record(body, lambda i, w: w >> 60 == 0xf and i < 64))
                took_holes = True
            continue
        out += record(t, body)
        if t == 0:
            break
    out += d[p:]  # libxl's records after the libxc stream, its END
    open(sys.argv[2], 'wb').write(out)


if __name__ == '__main__':
    main()
