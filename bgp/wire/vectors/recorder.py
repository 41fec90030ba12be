#!/usr/bin/env python3
"""A tiny BGP speaker that records every message of its sessions as hex lines.

It listens on the given ports, answers each peer's OPEN with its own, keeps the
session alive, waits for End-of-RIB (IPv4 and IPv6), asks for a route refresh,
then ends the session (a shutdown command run for the peer, or a message of
unknown type that makes the peer send a NOTIFICATION) and writes `<name>.hex`:

    tx <hex>   a message the recorder sent
    rx <hex>   a message the peer sent

Used only by capture.sh; no third-party modules.
"""
import argparse
import socket
import struct
import subprocess
import threading
import time

MARKER = b"\xff" * 16


def msg(t, body=b""):
    return MARKER + struct.pack("!HB", 19 + len(body), t) + body


def cap(code, value=b""):
    return bytes([code, len(value)]) + value


def open_msg(asn, router_id, modern):
    caps = cap(1, b"\x00\x01\x00\x01") + cap(1, b"\x00\x02\x00\x01") + cap(2) + cap(70)
    if modern:
        caps += cap(65, struct.pack("!I", asn))
        caps += cap(69, b"\x00\x01\x01\x01" + b"\x00\x02\x01\x01")  # ADD-PATH receive v4, v6
        caps += cap(6)  # extended messages
        caps += cap(64, struct.pack("!H", 120) + b"\x00\x01\x01\x00" + b"\x00\x02\x01\x00")
    params = bytes([2, len(caps)]) + caps
    body = struct.pack("!BHH4sB", 4, asn if asn < 65536 else 23456, 90,
                       socket.inet_aton(router_id), len(params)) + params
    return msg(1, body)


EOR_V4 = msg(2, b"\x00\x00\x00\x00")
EOR_V6 = msg(2, b"\x00\x00\x00\x06\x80\x0f\x03\x00\x02\x01")


class Session:
    def __init__(self, conn, name, modern, args):
        self.conn, self.name, self.modern, self.args = conn, name, modern, args
        self.lines = []
        self.buf = b""
        self.lock = threading.Lock()

    def send(self, m):
        with self.lock:
            self.lines.append("tx " + m.hex())
        self.conn.sendall(m)

    def recv_until(self, pred, deadline, idle=None):
        """Records messages until pred(message) is true, the deadline passes, or
        (with idle) nothing but KEEPALIVEs arrived for idle seconds."""
        last = time.time()
        while time.time() < deadline and (idle is None or time.time() - last < idle):
            while len(self.buf) >= 19:
                length = struct.unpack("!H", self.buf[16:18])[0]
                if len(self.buf) < length:
                    break
                m, self.buf = self.buf[:length], self.buf[length:]
                with self.lock:
                    self.lines.append("rx " + m.hex())
                if m[18] != 4:
                    last = time.time()
                if pred(m):
                    return m
            self.conn.settimeout(max(0.05, min(1.0, deadline - time.time())))
            try:
                data = self.conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return None
            self.buf += data
        return None

    def keepalives(self, stop):
        while not stop.wait(10):
            try:
                self.send(msg(4))
            except OSError:
                return

    def run(self):
        now = time.time
        self.recv_until(lambda m: m[18] == 1, now() + 30)
        self.send(open_msg(self.args.asn, self.args.router_id, self.modern))
        self.send(msg(4))
        stop = threading.Event()
        threading.Thread(target=self.keepalives, args=(stop,), daemon=True).start()
        seen = set()

        def eor(m):
            if m in (EOR_V4, EOR_V6):
                seen.add(m)
            return len(seen) == 2

        # Peers without graceful restart (GoBGP) send no End-of-RIB: stop when quiet.
        self.recv_until(eor, now() + 40, idle=3)
        # Let late routes arrive, then ask for a refresh (BoRR/EoRR with RFC 7313 peers).
        self.recv_until(lambda m: False, now() + 2)
        self.send(msg(5, b"\x00\x01\x00\x01"))
        self.recv_until(lambda m: m[18] == 5 and m[21] == 2, now() + 8, idle=2)
        self.recv_until(lambda m: False, now() + 1)
        cmd = self.args.shutdown.get(self.name)
        if cmd:
            subprocess.run(cmd, shell=True, check=False)
        else:
            # An unknown message type: RFC 4271 §6.1 makes the peer send a NOTIFICATION.
            self.send(msg(9))
        self.recv_until(lambda m: m[18] == 3, now() + 10)
        stop.set()
        self.conn.close()
        with open(f"{self.args.out}/{self.name}.hex", "w") as f:
            f.write(f"# {self.args.comment[self.name]}\n")
            f.write("# tx: sent by recorder.py, rx: sent by the peer; one message per line\n")
            f.write("\n".join(self.lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asn", type=int, default=65000)
    ap.add_argument("--router-id", default="10.99.0.1")
    ap.add_argument("--out", required=True)
    ap.add_argument("--peer", action="append", default=[],
                    help="NAME,SOURCE_IP,PORT,modern|legacy,COMMENT")
    ap.add_argument("--shutdown-cmd", action="append", default=[], help="NAME=COMMAND")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    args.shutdown = dict(s.split("=", 1) for s in args.shutdown_cmd)
    peers, args.comment = {}, {}
    for p in args.peer:
        name, ip, port, mode, comment = p.split(",", 4)
        peers[(ip, int(port))] = (name, mode == "modern")
        args.comment[name] = comment
    listeners = {}
    for port in sorted({port for _, port in peers}):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(8)
        s.settimeout(0.2)
        listeners[port] = s
    threads, done = [], set()
    deadline = time.time() + args.timeout
    while len(done) < len(peers) and time.time() < deadline:
        for port, s in listeners.items():
            try:
                conn, (ip, _) = s.accept()
            except socket.timeout:
                continue
            key = (ip, port)
            if key not in peers or key in done:
                conn.close()
                continue
            done.add(key)
            name, modern = peers[key]
            t = threading.Thread(target=Session(conn, name, modern, args).run)
            t.start()
            threads.append(t)
    for t in threads:
        t.join(max(0, deadline - time.time()) + 30)
    missing = [peers[k][0] for k in peers if k not in done]
    if missing:
        raise SystemExit(f"no session from {missing}")


if __name__ == "__main__":
    main()
