#!/usr/bin/env python3
"""Bounded UDP stream with sequence numbers, and a guest's own gratuitous ARP.
  net-stream.py recv BIND_IP PORT OUTFILE MAX_SECONDS   -> summary JSON in OUTFILE
  net-stream.py send DST_IP PORT COUNT INTERVAL_S
  net-stream.py garp IFNAME MAC IP                      -> one gratuitous ARP from IFNAME
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
elif mode == 'garp':
    ifname, mac, ip = sys.argv[2], bytes.fromhex(sys.argv[3].replace(':', '')), socket.inet_aton(sys.argv[4])
    f = b'\xff' * 6 + mac + b'\x08\x06' + b'\x00\x01\x08\x00\x06\x04\x00\x01' + mac + ip + b'\0' * 6 + ip
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    s.send(f + b'\0' * (60 - len(f)))
else:
    ip, port, out, maxs = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
