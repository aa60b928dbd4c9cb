#!/usr/bin/env python3
"""Bounded UDP stream with sequence numbers, and a guest's own gratuitous ARP.
  net-stream.py recv BIND_IP PORT OUTFILE MAX_SECONDS   -> summary JSON in OUTFILE
  net-stream.py send DST_IP PORT COUNT INTERVAL_S
  net-stream.py garp IFNAME MAC IP                      -> one gratuitous ARP from IFNAME
  net-stream.py garp-on-port DB_SOCK PORT IFNAME MAC IP -> the same, the moment PORT has an
      OpenFlow number in that OVSDB (as Linux netfront does when it reconnects)
The receiver records every packet's sequence number, the time it was sent
(the sender's timestamp: both ends share the machine's clock) and the time it
arrived; the test judges outages by send times, which scheduling delays of a
busy machine do not move.
"""
import json, socket, struct, sys, time

mode = sys.argv[1]
if mode == 'send':
    ip, port, count, iv = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.time()
    for i in range(count):
        d = t0 + i * iv - time.time()
        if d > 0:
            time.sleep(d)
        try:
            s.sendto(struct.pack('!Id', i, time.time()) + b'\0' * 52, (ip, port))
        except OSError:
            pass
elif mode in ('garp', 'garp-on-port'):
    a = sys.argv[2:] if mode == 'garp' else sys.argv[4:]
    ifname, mac, ip = a[0], bytes.fromhex(a[1].replace(':', '')), socket.inet_aton(a[2])
    f = b'\xff' * 6 + mac + b'\x08\x06' + b'\x00\x01\x08\x00\x06\x04\x00\x01' + mac + ip + b'\0' * 6 + ip
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    if mode == 'garp-on-port':
        # OVSDB JSON-RPC monitor on the Interface table (RFC 7047 4.1.5)
        db, port = sys.argv[2], sys.argv[3]
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(db)
        c.sendall(json.dumps({'method': 'monitor', 'id': 1, 'params': [
            'Open_vSwitch', None, {'Interface': {'columns': ['name', 'ofport']}}]}).encode())
        dec, buf, done = json.JSONDecoder(), '', False
        while not done:
            chunk = c.recv(65536).decode()
            if not chunk:
                sys.exit(1)
            buf += chunk
            while buf and not done:
                try:
                    msg, end = dec.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:].lstrip()
                if msg.get('method') == 'echo':
                    c.sendall(json.dumps({'id': msg['id'], 'result': msg['params'], 'error': None}).encode())
                    continue
                upd = msg.get('result') if msg.get('id') == 1 else (msg.get('params') or [None, {}])[1]
                for row in ((upd or {}).get('Interface') or {}).values():
                    new = row.get('new') or {}
                    if new.get('name') == port and isinstance(new.get('ofport'), int) and new['ofport'] > 0:
                        done = True
    s.send(f + b'\0' * (60 - len(f)))
else:
    ip, port, out, maxs = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # a receiver starved by a busy machine must not drop what arrived
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((ip, port))
    s.settimeout(0.5)
    pkts = []  # [seq, sent (sender's clock), received]; one machine, one clock
    tend = time.time() + maxs
    while time.time() < tend:
        try:
            d, _ = s.recvfrom(2048)
        except socket.timeout:
            if pkts and time.time() - pkts[-1][2] > 3:
                break
            continue
        seq, sent = struct.unpack('!Id', d[:12])
        pkts.append([seq, sent, time.time()])
    json.dump({'received': len(pkts), 'pkts': pkts}, open(out, 'w'))
