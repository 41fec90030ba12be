#!/usr/bin/env python3
"""Datastore load of a lab, idle and per change (issue 20).

For each lab size N (`--nodes 50,100,150,200`): `tortiectl lab up --nodes N
--route-reflectors 2 --mode bgp --pods-per-node 0` on the chosen store, wait
until every node is settled, then

- idle: over `--idle` seconds, etcd's own counters (`/metrics` of the etcd
  this script started: gRPC payload bytes sent, unary requests by method),
  the TCP bytes etcd sent on its client connections (`ss -ti`, what the
  wire carries: gRPC framing, HTTP/2 pings), and the agents' CPU
  (utime+stime of every tortie-node, from /proc);
- one change, then the same counters over `--change-window` seconds, less
  the idle rate over that window. `--change bgppeer` (default):
  `tortiectl apply` of a BGPPeer whose peerSelector matches no node (every
  agent reads it, no session follows). `--change endpoint`: a pod `bench`
  is added on the last node (`tortiectl lab pod add`) before the quiet
  period, and the change is `tortiectl label workloadendpoint` of its
  endpoint: every agent with the Linux dataplane (all but the route
  reflectors) follows every endpoint for policy, so this is the syncer's
  cost of a remote endpoint change; node1's own counters show what one
  such agent received.

Per agent = divided by the lab's agents (N nodes and the router). With
`--store sqlite` only the CPU is measured (there is no server to count).

etcd runs on free loopback ports with its own data directory; it and the
lab are stopped at the end, also on failure or Ctrl-C. Root needed (the lab).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import lablib

CHANGE = """apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bench-change
spec:
  nodeSelector: all()
  peerSelector: bench == 'no-such-node'
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """An etcd on loopback for this run (killed by PID in stop())."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tbsync-etcd-")
        self.port, peer = free_port(), free_port()
        client = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "etcd.log"), "w")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "tbsync", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"tbsync=http://127.0.0.1:{peer}",
             "--quota-backend-bytes", str(4 << 30)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if b"true" in urllib.request.urlopen(f"{client}/health", timeout=1).read():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("etcd did not become healthy")

    @property
    def url(self):
        return f"etcd://127.0.0.1:{self.port}"

    def metrics(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out = {"sent": 0.0, "received": 0.0, "unary": {}, "watch_msgs": 0.0, "watchers": 0.0}
        for line in text.splitlines():
            if line.startswith("etcd_network_client_grpc_sent_bytes_total "):
                out["sent"] = float(line.split()[1])
            elif line.startswith("etcd_network_client_grpc_received_bytes_total "):
                out["received"] = float(line.split()[1])
            elif line.startswith("grpc_server_handled_total{") and 'grpc_type="unary"' in line:
                m = re.search(r'grpc_method="(\w+)"', line)
                out["unary"][m.group(1)] = out["unary"].get(m.group(1), 0.0) + float(line.split()[-1])
            elif line.startswith("grpc_server_msg_sent_total{") and 'grpc_method="Watch"' in line:
                out["watch_msgs"] = float(line.split()[-1])
            elif line.startswith("etcd_debugging_mvcc_watcher_total "):
                out["watchers"] = float(line.split()[1])
        out["wire"] = self.wire_bytes()
        return out

    def wire_bytes(self):
        """TCP payload bytes etcd sent on its open client connections."""
        p = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{self.port} )"],
                           capture_output=True, text=True)
        return sum(int(m) for m in re.findall(r"bytes_sent:(\d+)", p.stdout))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def agent_pids(name):
    return list(lablib.load_state(name)["pids"].values())


def agent_metrics(name):
    """node1's own `tortie_datastore_*` counters (its /metrics in its namespace)."""
    ns = next(n["netns"] for n in lablib.load_state(name)["plan"]["nodes"] if n["name"] == "node1")
    p = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "127.0.0.1:9099/metrics"],
                       capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("tortie_datastore_"):
            k, _, v = line.rpartition(" ")
            out[k[len("tortie_datastore_"):]] = float(v)
    return out


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def delta(a, b):
    d = {"sent": b["sent"] - a["sent"], "received": b["received"] - a["received"],
         "wire": b["wire"] - a["wire"], "watch_msgs": b["watch_msgs"] - a["watch_msgs"]}
    d["unary"] = {k: b["unary"].get(k, 0) - a["unary"].get(k, 0) for k in b["unary"]}
    d["unary"] = {k: v for k, v in d["unary"].items() if v}
    return d


def window(etcd, pids, seconds, action=None):
    """Counters over `seconds`; `action` runs right after the first sample."""
    hz = os.sysconf("SC_CLK_TCK")
    m0, c0, t0 = etcd.metrics() if etcd else None, cpu_ticks(pids), time.monotonic()
    if action:
        action()
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    m1, c1, t1 = etcd.metrics() if etcd else None, cpu_ticks(pids), time.monotonic()
    el = t1 - t0
    return {"seconds": el, "cpu_cores": (c1 - c0) / hz / el, "etcd": delta(m0, m1) if etcd else None}


def one_size(a, etcd, n):
    ctl = [os.path.join(a.bin_dir, "tortiectl")]
    if etcd:
        ctl += ["--datastore", etcd.url]
    t0 = time.monotonic()
    subprocess.run(ctl + ["lab", "up", "--name", a.name, "--nodes", str(n), "--route-reflectors", "2",
                          "--mode", "bgp", "--pods-per-node", "0"], check=True, timeout=1800)
    lablib.wait_settled(a.bin_dir, a.name, limit=a.limit)
    up = time.monotonic() - t0
    if not etcd:  # the lab's own SQLite file, not tortiectl's default
        ctl += ["--datastore", lablib.lab_status(a.bin_dir, a.name)["datastore"]]
    if a.change == "endpoint":
        subprocess.run(ctl + ["lab", "pod", "add", "bench", "--node", f"node{n}", "--namespace",
                              "default", "--labels", "v=0", "--name", a.name],
                       check=True, capture_output=True)
    time.sleep(a.quiet)  # let start-up writes (Nodes, tunnel checks) finish
    pids = agent_pids(a.name)
    node1 = [agent_metrics(a.name)]
    idle = window(etcd, pids, a.idle)
    node1.append(agent_metrics(a.name))
    def apply():
        if a.change == "endpoint":
            subprocess.run(ctl + ["label", "workloadendpoint", f"node{n}-k8s-bench-eth0", "-n",
                                  "default", "v=1", "--overwrite"], check=True, capture_output=True)
        else:
            subprocess.run(ctl + ["apply", "-f", "-"], input=CHANGE, text=True, check=True,
                           capture_output=True)
    change = window(etcd, pids, a.change_window, apply)
    node1.append(agent_metrics(a.name))
    if a.change == "bgppeer":
        subprocess.run(ctl + ["delete", "bgppeer", "bench-change"], check=True, capture_output=True)
    res = {"nodes": n, "agents": len(pids), "up_s": up, "idle": idle, "change": change,
           "change_kind": a.change, "node1_metrics": node1}
    agents = len(pids)
    if etcd:
        e, c = idle["etcd"], change["etcd"]
        per = lambda v: v / idle["seconds"] / agents  # noqa: E731
        scale = change["seconds"] / idle["seconds"]
        res["summary"] = {
            "idle_grpc_B_per_s_per_agent": per(e["sent"]),
            "idle_wire_B_per_s_per_agent": per(e["wire"]),
            "idle_unary_req_per_s": sum(e["unary"].values()) / idle["seconds"],
            "change_grpc_B_per_agent": (c["sent"] - e["sent"] * scale) / agents,
            "change_wire_B_per_agent": (c["wire"] - e["wire"] * scale) / agents,
            "change_unary_req": c["unary"],
            "change_watch_msgs": c["watch_msgs"] - e["watch_msgs"] * scale,
            "agents_cpu_cores_idle": idle["cpu_cores"],
        }
    else:
        res["summary"] = {"agents_cpu_cores_idle": idle["cpu_cores"]}
    m0, m1, m2 = node1
    res["summary"]["node1_list_bytes"] = m0.get("received_bytes_total", 0)
    res["summary"]["node1_idle_requests"] = sum(
        m1.get(k, 0) - m0.get(k, 0) for k in m1 if k.startswith("requests_total"))
    res["summary"]["node1_change_bytes"] = m2.get("received_bytes_total", 0) - m1.get("received_bytes_total", 0)
    res["summary"]["node1_change_requests"] = sum(
        m2.get(k, 0) - m1.get(k, 0) for k in m2 if k.startswith("requests_total"))
    print(json.dumps({"nodes": n, "agents": agents, **res["summary"]}), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=lablib.DEFAULT_BIN_DIR)
    ap.add_argument("--name", default="tbsync")
    ap.add_argument("--store", choices=["etcd", "sqlite"], default="etcd")
    ap.add_argument("--nodes", default="50,100,150,200", help="comma-separated lab sizes")
    ap.add_argument("--change", choices=["bgppeer", "endpoint"], default="bgppeer",
                    help="what the measured change is")
    ap.add_argument("--idle", type=float, default=60.0, help="idle window (s)")
    ap.add_argument("--quiet", type=float, default=15.0, help="wait after settled before measuring (s)")
    ap.add_argument("--change-window", type=float, default=10.0, help="window after the change (s)")
    ap.add_argument("--limit", type=float, default=900.0, help="give up waiting for settled after (s)")
    ap.add_argument("--json", help="write the full result here")
    a = ap.parse_args()

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    out = {"machine": lablib.machine(), "store": a.store, "change": a.change, "runs": []}
    print(json.dumps(out["machine"]), flush=True)
    etcd = Etcd() if a.store == "etcd" else None
    try:
        for n in [int(x) for x in a.nodes.split(",")]:
            try:
                out["runs"].append(one_size(a, etcd, n))
            finally:
                lablib.lab_down(a.bin_dir, a.name)
    finally:
        if etcd:
            etcd.stop()
        out["machine_after"] = {"uptime": lablib.machine()["uptime"]}
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
