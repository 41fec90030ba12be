#!/usr/bin/env python3
"""A BGP client that only connects, as monitoring tools and test harnesses do.

It binds SOURCE, connects to PEER:PORT, sends an OPEN (IPv4 unicast,
4-octet AS) and a KEEPALIVE, and never listens. It prints one line per
event on stdout: `ESTABLISHED` once the peer's KEEPALIVE confirmed the
session, `PREFIXES n` each time the count of IPv4 prefixes it holds
changes, `NOTIFICATION code/subcode` (then exits 1) or `CLOSED` (exit 1).
It answers with KEEPALIVEs every hold/3 seconds and stops after SECONDS.

    bgp-connect-only-client.py SOURCE PEER:PORT ASN [SECONDS]
"""

import select
import socket
import struct
import sys
import time

HOLD = 9


def message(kind, body=b""):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(asn, router_id):
    caps = struct.pack("!BBHBB", 1, 4, 1, 0, 1)  # multiprotocol IPv4 unicast
    caps += struct.pack("!BBI", 65, 4, asn)  # 4-octet AS
    params = struct.pack("!BB", 2, len(caps)) + caps
    my_as = asn if asn < 65536 else 23456
    body = struct.pack("!BHH", 4, my_as, HOLD) + socket.inet_aton(router_id)
    return message(1, body + struct.pack("!B", len(params)) + params)


def prefixes(data):
    """IPv4 NLRI in a withdrawn-routes or NLRI field (no ADD-PATH)."""
    out, i = [], 0
    while i < len(data):
        plen = data[i]
        n = (plen + 7) // 8
        out.append((bytes(data[i + 1 : i + 1 + n]), plen))
        i += 1 + n
    return out


def update(body, table):
    wlen = struct.unpack("!H", body[:2])[0]
    for p in prefixes(body[2 : 2 + wlen]):
        table.discard(p)
    alen = struct.unpack("!H", body[2 + wlen : 4 + wlen])[0]
    for p in prefixes(body[4 + wlen + alen :]):
        table.add(p)


def main():
    source, peer = sys.argv[1], sys.argv[2]
    asn = int(sys.argv[3])
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 3600.0
    host, port = peer.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect((host, int(port)))
    s.sendall(open_message(asn, source) + message(4))
    buf, table, up = b"", set(), False
    end = time.monotonic() + seconds
    next_keepalive = time.monotonic() + HOLD / 3
    while time.monotonic() < end:
        ready, _, _ = select.select([s], [], [], 0.2)
        if time.monotonic() >= next_keepalive:
            s.sendall(message(4))
            next_keepalive += HOLD / 3
        if not ready:
            continue
        chunk = s.recv(65536)
        if not chunk:
            print("CLOSED", flush=True)
            return 1
        buf += chunk
        while len(buf) >= 19:
            length, kind = struct.unpack("!HB", buf[16:19])
            if len(buf) < length:
                break
            body, buf = buf[19:length], buf[length:]
            if kind == 4 and not up:
                up = True
                print("ESTABLISHED", flush=True)
            elif kind == 3:
                print("NOTIFICATION %d/%d" % (body[0], body[1]), flush=True)
                return 1
            elif kind == 2:
                before = len(table)
                update(body, table)
                if len(table) != before:
                    print("PREFIXES %d" % len(table), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
