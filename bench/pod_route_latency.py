#!/usr/bin/env python3
"""Pod ADD on node A -> route in the other nodes' FIBs (issue 9).

Builds a lab (`tortiectl lab up`, BGP mode, no pods), then creates pods on
node1 one after another by running the `tortie` CNI plugin inside node1's
namespace exactly as the lab (and a runtime) does: environment + network
configuration on stdin, `tortie-ipam` for the address. The FIB of every
other node on node1's subnet and the router's (nodes on the other subnet
route pods through the router) is watched with `ip -n NS -ts monitor route`; for
every pod the latency is the time from the start of its CNI ADD until that
node's FIB holds a BGP-learned route (proto 84) covering
the pod IP, i.e. until the node can reach the pod through node1. A route
that was already there (the pod landed in an advertised block) counts 0.

--block 26 uses the lab's default pool (10.244.0.0/16, /26 blocks: a new
route only when a block is claimed); --block 32 (or 30, 31) adds the pool
10.245.0.0/22 with that block size and allocates from it, so each pod (or
every few pods) needs a new route.

Pod namespaces are named `<lab>-bpodN` so that `lab down` removes them;
the lab is taken down at the end, also on failure or Ctrl-C.
"""

import argparse
import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib  # noqa: E402

BENCH_POOL = "10.245.0.0/22"


class FibWatch:
    """`ip -n NS -ts monitor route` in a thread; keeps every BGP route
    event with its timestamp and the set of BGP routes present now."""

    def __init__(self, ns):
        self.ns = ns
        self.events = []  # (epoch seconds, "add"|"del", IPv4Network, line)
        self.present = set()
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["ip", "-n", ns, "-ts", "monitor", "route"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # Routes there before the monitor started count as present forever.
        time.sleep(0.2)
        out = subprocess.run(
            ["ip", "-n", ns, "route", "show", "proto", "bgp"],
            capture_output=True, text=True, check=True,
        ).stdout
        with self.cond:
            for line in out.splitlines():
                net = parse_route(line)
                if net is not None:
                    self.events.append((float("-inf"), "add", net, line))
                    self.present.add(net)

    def _read(self):
        for raw in self.proc.stdout:
            if not raw.startswith("["):
                continue  # continuation line of a multipath route
            ts_s, _, rest = raw.partition("] ")
            ts = datetime.datetime.strptime(ts_s[1:], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            kind = "add"
            if rest.startswith("Deleted "):
                kind, rest = "del", rest[len("Deleted "):]
            net = parse_route(rest)
            if net is None:
                continue
            with self.cond:
                self.events.append((ts, kind, net, rest.strip()))
                (self.present.add if kind == "add" else self.present.discard)(net)
                self.cond.notify_all()

    def covers(self, ip):
        return any(ip in n for n in self.present)

    def wait_covered(self, ip, deadline):
        with self.cond:
            while not self.covers(ip):
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def latency(self, ip, t0):
        """Seconds from t0 until a covering BGP route is present (0 if it
        was already), or None if it never appeared."""
        with self.cond:
            ev = sorted(self.events, key=lambda e: e[0])
        present = set()
        for ts, kind, net, _ in ev:
            if ts >= t0:
                break
            (present.add if kind == "add" else present.discard)(net)
        if any(ip in n for n in present):
            return 0.0
        for ts, kind, net, _ in ev:
            if ts >= t0 and kind == "add" and ip in net:
                return ts - t0
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def parse_route(line):
    """The destination of a main-table BGP (proto 84, tortie's default
    `bgpRouteProtocol`) unicast route line
    of `ip route`/`ip monitor route`, else None."""
    words = line.split()
    if not words or "proto" not in words or words[words.index("proto") + 1] != "84":
        return None
    if "table" in words or words[0] in ("blackhole", "unreachable", "prohibit", "throw", "local", "broadcast"):
        return None
    dst = words[1] if words[0] == "unicast" else words[0]
    try:
        return ipaddress.ip_network(dst if "/" in dst else dst + "/32")
    except ValueError:
        return None


def cni_add(bin_dir, st, node, netns, pod, pools):
    plan = st["plan"]
    conf = {
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "tortie",
        "datastore": plan["datastore"],
        "nodename": node["name"],
        "mtu": 1500,
        "mtu_file": node["mtu_file"],
        "state_dir": os.path.join(plan["dir"], "cni-" + node["name"]),
        "ipam": {"type": "tortie-ipam"},
    }
    if pools:
        conf["ipam"]["ipv4_pools"] = pools
    cid = f"bench-{netns}"
    env = dict(os.environ)
    env.pop("TORTIE_DATASTORE", None)
    env.update({
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/{netns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": bin_dir,
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}",
    })
    t0 = time.time()
    p = subprocess.run(
        ["ip", "netns", "exec", node["netns"], os.path.join(bin_dir, "tortie")],
        input=json.dumps(conf), capture_output=True, text=True, env=env,
    )
    t1 = time.time()
    if p.returncode != 0:
        raise RuntimeError(f"CNI ADD {pod} failed: {p.stdout} {p.stderr}")
    ip = json.loads(p.stdout)["ips"][0]["address"].split("/")[0]
    return t0, t1, ipaddress.ip_address(ip)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=lablib.DEFAULT_BIN_DIR)
    ap.add_argument("--name", default="tbpod", help="lab name (namespace prefix)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--block", type=int, default=26, choices=[26, 30, 31, 32])
    ap.add_argument("--pace", choices=["wait", "none"], default="wait",
                    help="wait: next ADD once every watched FIB has the route (+gap); none: back to back")
    ap.add_argument("--gap", type=float, default=0.05, help="pause between pods (s)")
    ap.add_argument("--route-timeout", type=float, default=10.0)
    ap.add_argument("--json", help="write all samples here")
    a = ap.parse_args()

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    watches = []
    result = {"machine_before": lablib.machine(), "args": vars(a)}
    print("machine:", json.dumps(result["machine_before"]))
    try:
        t = time.time()
        up = lablib.tortiectl(a.bin_dir, "lab", "up", "--name", a.name, "--nodes", str(a.nodes),
                              "--pods-per-node", "0", "--mode", "bgp", timeout=600)
        print(up.stdout.splitlines()[0] if up.stdout else "", f"(script: {time.time() - t:.1f} s)")
        lablib.wait_settled(a.bin_dir, a.name)
        pools = []
        if a.block != 26:
            manifest = (
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: bench-pool\n"
                f"spec:\n  cidr: {BENCH_POOL}\n  blockSize: {a.block}\n  ipipMode: Never\n"
                "  vxlanMode: Never\n  natOutgoing: false\n"
            )
            st = lablib.load_state(a.name)
            subprocess.run([os.path.join(a.bin_dir, "tortiectl"), "--datastore", st["plan"]["datastore"],
                            "apply", "-f", "-"], input=manifest, text=True, check=True, capture_output=True)
            pools = [BENCH_POOL]
            time.sleep(1)
            lablib.wait_settled(a.bin_dir, a.name)
        st = lablib.load_state(a.name)
        node_a = st["plan"]["nodes"][0]
        # Nodes on node1's subnet get a BGP route straight to node1; nodes
        # on the other subnet reach pods through their default route to
        # the router (the lab's design), so the router's FIB stands for them.
        others = [n for n in st["plan"]["nodes"][1:] if n["subnet"] == node_a["subnet"]]
        if st["plan"].get("router_node"):
            others.append(st["plan"]["router_node"])
        watches = [(n, FibWatch(n["netns"])) for n in others]
        samples = []
        for i in range(1, a.pods + 1):
            netns = f"{a.name}-bpod{i}"
            subprocess.run(["ip", "netns", "add", netns], check=True)
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
            t0, t1, ip = cni_add(a.bin_dir, st, node_a, netns, f"bpod{i}", pools)
            samples.append({"pod": i, "ip": str(ip), "t0": t0, "t1": t1})
            if a.pace == "wait":
                deadline = time.time() + a.route_timeout
                for n, w in watches:
                    if not w.wait_covered(ip, deadline):
                        print(f"pod {i} {ip}: no route on {n['name']} after {a.route_timeout} s")
                time.sleep(a.gap)
        # Let the last routes arrive, then compute.
        deadline = time.time() + a.route_timeout
        for n, w in watches:
            w.wait_covered(ipaddress.ip_address(samples[-1]["ip"]), deadline)
        time.sleep(0.5)
        result["machine_after"] = lablib.machine()
        add_ms = [(s["t1"] - s["t0"]) * 1000 for s in samples]
        result["cni_add_ms"] = lablib.summary(add_ms)
        print(f"block /{a.block}, pace {a.pace}, {len(samples)} pods on {node_a['name']}")
        print("CNI ADD duration:", lablib.fmt_ms(result["cni_add_ms"]))
        result["nodes"] = {}
        for n, w in watches:
            lat, new, missing = [], [], 0
            for s in samples:
                ip = ipaddress.ip_address(s["ip"])
                l = w.latency(ip, s["t0"])
                s.setdefault("route_ms", {})[n["name"]] = None if l is None else l * 1000
                if l is None:
                    missing += 1
                    continue
                lat.append(l * 1000)
                if l > 0:
                    new.append(l * 1000)
            via = {}
            for s in samples:
                out = subprocess.run(["ip", "-n", n["netns"], "route", "get", s["ip"]],
                                     capture_output=True, text=True).stdout.split()
                hop = out[out.index("via") + 1] if "via" in out else ("dev " + out[out.index("dev") + 1] if "dev" in out else "?")
                via[hop] = via.get(hop, 0) + 1
            r = {"all": lablib.summary(lat), "new_route": lablib.summary(new), "missing": missing, "route_get_via": via}
            result["nodes"][n["name"]] = r
            print(f"  {n['name']:>7}: all pods {lablib.fmt_ms(r['all'])}")
            print(f"  {'':>7}  pods needing a new route {lablib.fmt_ms(r['new_route'])}; never routed: {missing}; "
                  f"route get via: {via}")
        print("load after:", result["machine_after"]["uptime"])
        result["samples"] = samples
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0
    finally:
        for _, w in watches:
            w.stop()
        lablib.lab_down(a.bin_dir, a.name)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
