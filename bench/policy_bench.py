#!/usr/bin/env python3
"""Network policy through the agent (issue 19), on the lab, release binaries.

  latency  policy change -> enforced on every node: 3 nodes, pods x/a
           (node1), x/b (node2), x/c (node3), all labelled bench=srv. A
           prober in each pod's namespace connects to the next pod's TCP 80
           (a->b, b->c, c->a) every --interval s with a --timeout s connect
           timeout and reports each change of outcome (after --debounce
           equal outcomes in a row, stamped with the first one's start).
           A GlobalNetworkPolicy `bench-flip` (selector bench == 'srv',
           ingress: <action> TCP to port 80, then Allow) is applied with
           `tortiectl apply`, alternately Deny and Allow; latency = start
           of the first probe showing the new outcome minus the moment just
           before `tortiectl apply` is exec'd, per prober; a round's figure
           is the slowest prober (enforced on every node).
  scale    1,000 policies over 200 endpoints: a 1-node lab, 10 namespaces
           (Namespace resources, team=t0..t2), 200 pods added with
           `tortiectl lab pod add` on node1 (real CNI ADDs: cali* veths,
           WorkloadEndpoints written by the plugin, a pod server each), then
           one `tortiectl apply -f` of 1,000 Kubernetes NetworkPolicies (the
           shape of felix/dataplane/examples/policy-bench.rs). A poller in
           node1's namespace reads the agent's /metrics every 10 ms; done =
           first sample whose tortie_policy_rules equals the final value
           (the one the kernel table holds once programs stop). Then node1's
           agent is stopped (`lab node stop`) and started again by this
           script with the lab's arguments: its first program of the stored
           1,000 policies (compile + whole-table nft) is read from
           tortie_policy_program_seconds.
  iperf    TCP throughput between two pods on two nodes (client x on node1,
           server on node2), iperf3 for --seconds, rounds alternating: no
           policy applies to the server (its label app=other) / 1,000
           Calico NetworkPolicies apply to it (label app=server; policy j
           has order j and allows only `app == 'nobody'` except the last,
           which allows the client on TCP 15201), each checked (a third pod
           is refused while policed) before iperf3 runs.

Every lab is taken down at the end, also on failure or Ctrl-C; processes
this script starts are killed by PID. Traffic only between the lab's pods.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import lablib

PROBER = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
interval, timeout, debounce = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
shown, run_state, run_start, run_len = None, None, 0.0, 0
while True:
    t = time.monotonic()
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        ok = True
    except OSError:
        ok = False
    finally:
        s.close()
    if ok != run_state:
        run_state, run_start, run_len = ok, t, 0
    run_len += 1
    if run_len == debounce and ok != shown:
        shown = ok
        print("%.6f %d" % (run_start, ok), flush=True)
    d = interval - (time.monotonic() - t)
    if d > 0:
        time.sleep(d)
"""

POLLER = r"""
import socket, sys, time
every = float(sys.argv[1])
keys = ("tortie_policy_rules ", "tortie_policy_programs_total ",
        "tortie_policy_program_seconds_sum ", "tortie_policy_program_seconds_count ",
        "tortie_policy_endpoints ", "tortie_policy_in_sync ")
while True:
    t = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", 9099), timeout=2)
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        buf = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
        s.close()
        vals = {}
        for line in buf.decode().splitlines():
            for k in keys:
                if line.startswith(k):
                    vals[k.strip()] = float(line.split()[1])
        print(t, *(vals.get(k.strip(), -1) for k in keys), flush=True)
    except OSError:
        pass
    d = every - (time.monotonic() - t)
    if d > 0:
        time.sleep(d)
"""
POLL_KEYS = ("rules", "programs", "sum", "count", "endpoints", "in_sync")


class Proc:
    """A process in a namespace whose stdout lines are collected with the
    time they were read; killed by PID in stop()."""

    def __init__(self, netns, argv):
        self.lines = []
        self.p = subprocess.Popen(["ip", "netns", "exec", netns, *argv],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.split())

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


class Lab:
    def __init__(self, a, name):
        self.bin, self.name = a.bin_dir, name
        self.procs = []

    def ctl(self, *args, stdin=None, check=True):
        return subprocess.run([os.path.join(self.bin, "tortiectl"), *args], input=stdin,
                              text=True, capture_output=True, check=check)

    def lab(self, *args):
        return self.ctl("lab", *args, "--name", self.name)

    def up(self, *args):
        self.lab("up", *args)
        lablib.wait_settled(self.bin, self.name)
        self.ds = lablib.lab_status(self.bin, self.name)["datastore"]

    def apply(self, text):
        return self.ctl("--datastore", self.ds, "apply", "-f", "-", stdin=text)

    def status(self):
        return lablib.lab_status(self.bin, self.name)

    def netns(self, node):
        return next(n["netns"] for n in self.status()["nodes"] if n["name"] == node)

    def pods(self):
        return {p["id"]: p for p in self.status()["pods"]}

    def spawn(self, netns, argv):
        p = Proc(netns, argv)
        self.procs.append(p)
        return p

    def down(self):
        for p in self.procs:
            p.stop()
        lablib.lab_down(self.bin, self.name)


# ------------------------------------------------------------- latency --

def flip_policy(action):
    return f"""apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: bench-flip}}
spec:
  selector: bench == 'srv'
  types: [Ingress]
  ingress:
  - action: {action}
    protocol: TCP
    destination: {{ports: [80]}}
  - action: Allow
"""


def latency(a, lab):
    lab.up("--nodes", "3", "--pods-per-node", "0", "--mode", a.mode)
    for pod, node in (("a", "node1"), ("b", "node2"), ("c", "node3")):
        lab.lab("pod", "add", pod, "--node", node, "--namespace", "x", "--labels", "bench=srv")
    lab.apply(flip_policy("Allow"))
    pods = lab.pods()
    pairs = (("x/a", "x/b"), ("x/b", "x/c"), ("x/c", "x/a"))
    probers = [lab.spawn(pods[f]["netns"], ["python3", "-u", "-c", PROBER, pods[t]["ip"], "80",
                                            str(a.interval), str(a.timeout), str(a.debounce)])
               for f, t in pairs]

    def state(p):
        return (float(p.lines[-1][0]), p.lines[-1][1] == "1") if p.lines else (0.0, None)

    def wait_all(want, since, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            s = [state(p) for p in probers]
            if all(ok == want and t >= since for t, ok in s):
                return [t - since for t, _ in s]
            time.sleep(0.005)
        raise RuntimeError(f"not every prober saw {want} within {limit} s: {[state(p) for p in probers]}")

    wait_all(True, 0.0, 30)
    res = {"deny": [], "allow": []}
    for r in range(a.rounds + 1):
        for action, want in (("Deny", False), ("Allow", True)):
            t0 = time.monotonic()
            lab.apply(flip_policy(action))
            lat = wait_all(want, t0, 30)
            if r > 0:  # round 0 warms up (first write of the policy's chains)
                res[action.lower()].append(lat)
            time.sleep(a.gap)
    out = {}
    for k, v in res.items():
        slowest = [max(x) * 1000 for x in v]
        each = [y * 1000 for x in v for y in x]
        out[k] = {"every_node_ms": lablib.summary(slowest), "per_prober_ms": lablib.summary(each)}
        print(f"{k}: every node {lablib.fmt_ms(out[k]['every_node_ms'])}; "
              f"per prober {lablib.fmt_ms(out[k]['per_prober_ms'])}", flush=True)
    both = [max(x) * 1000 for v in res.values() for x in v]
    out["both"] = {"every_node_ms": lablib.summary(both)}
    print(f"both directions: every node {lablib.fmt_ms(out['both']['every_node_ms'])}", flush=True)
    out["raw_s"] = res
    return out


# --------------------------------------------------------------- scale --

def namespaces(n):
    return "---\n".join(
        f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{i}\n  labels:\n    team: t{i % 3}\n"
        for i in range(n))


def k8s_policy(j):
    """Policy j, as felix/dataplane/examples/policy-bench.rs builds it."""
    ns, app = j % 10, (j // 10) % 10
    return f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: np{j}, namespace: ns{ns}}}
spec:
  podSelector: {{matchLabels: {{app: app{app}}}}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector: {{matchLabels: {{app: app{(app + 1) % 10}}}}}
        - namespaceSelector: {{matchLabels: {{team: t{j % 3}}}}}
          podSelector: {{matchExpressions: [{{key: tier, operator: In, values: [t0, t1]}}]}}
      ports: [{{port: {8000 + j % 50}}}, {{protocol: UDP, port: 53}}]
    - from: [{{ipBlock: {{cidr: 192.168.{j % 250}.0/24, except: [192.168.{j % 250}.128/25]}}}}]
  egress:
    - to: [{{podSelector: {{}}}}]
    - to: [{{ipBlock: {{cidr: 0.0.0.0/0}}}}]
      ports: [{{port: 443}}]
"""


def samples(poller):
    return [(float(l[0]), dict(zip(POLL_KEYS, map(float, l[1:])))) for l in list(poller.lines)
            if len(l) == 1 + len(POLL_KEYS)]


def wait_quiet(poller, quiet, limit, since=0.0):
    """Waits until programs_total has not moved for `quiet` s after `since`
    (the poller still answering); the last sample."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        s = [x for x in samples(poller) if x[0] >= since]
        if s and time.monotonic() - s[-1][0] < 0.5:
            last = s[-1][1]["programs"]
            moved = [t for t, v in s if v["programs"] != last]
            start = moved[-1] if moved else since
            if s[-1][0] - start >= quiet and s[-1][1]["in_sync"] == 1:
                return s[-1][1]
        time.sleep(0.1)
    raise RuntimeError(f"the agent did not settle: {samples(poller)[-3:]}")


def kernel_rules(netns):
    out = subprocess.run(["ip", "netns", "exec", netns, "nft", "-j", "list", "table", "inet",
                          "tortie-policy"], capture_output=True, text=True, check=True).stdout
    return sum(1 for o in json.loads(out)["nftables"] if "rule" in o)


def start_agent(lab, node):
    """node's tortie-node with the lab's arguments (sys.rs start_node)."""
    st = lablib.load_state(lab.name)
    n = next(x for x in st["plan"]["nodes"] if x["name"] == node)
    argv = [os.path.join(lab.bin, "tortie-node"), "--datastore", lab.status()["agent_datastore"],
            "--node-name", n["name"], "--node-ip", n["ip"], "--control-socket", n["control_socket"],
            "--mtu-file", n["mtu_file"], "--http-addr", "127.0.0.1:9099", "--log-level", "info",
            "--dataplane", "linux"]
    log = open(n["log"] + ".bench", "w")
    env = {k: v for k, v in os.environ.items() if k != "TORTIE_DATASTORE"}
    p = subprocess.Popen(["ip", "netns", "exec", n["netns"], *argv], stdout=log,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return p, log


def scale(a, lab):
    lab.up("--nodes", "1", "--pods-per-node", "0", "--mode", "bgp")
    lab.apply(namespaces(10))
    t = time.monotonic()
    for i in range(a.endpoints):
        lab.lab("pod", "add", f"pod{i}", "--node", "node1", "--namespace", f"ns{i % 10}",
                "--labels", f"app=app{(i // 10) % 10},tier=t{i % 3}")
    pods_s = time.monotonic() - t
    print(f"{a.endpoints} pods added in {pods_s:.1f} s", flush=True)
    ns1 = lab.netns("node1")
    poller = lab.spawn(ns1, ["python3", "-u", "-c", POLLER, "0.01"])
    end = time.monotonic() + 120
    while not any(v["endpoints"] == a.endpoints for _, v in samples(poller)):
        if time.monotonic() > end:
            raise RuntimeError(f"node1 never policed {a.endpoints} endpoints: {samples(poller)[-1:]}")
        time.sleep(0.1)
    base = wait_quiet(poller, 2.0, 120)
    assert base["endpoints"] == a.endpoints, base
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("---\n".join(k8s_policy(j) for j in range(a.policies)))
    try:
        t0 = time.monotonic()
        lab.ctl("--datastore", lab.ds, "apply", "-f", f.name)
        t1 = time.monotonic()
    finally:
        os.unlink(f.name)
    final = wait_quiet(poller, 3.0, 300, since=t1)
    kr = kernel_rules(ns1)
    assert kr == final["rules"], (kr, final, t0, t1, samples(poller)[-5:])
    s = samples(poller)
    done = next(t for t, v in s if t >= t0 and v["rules"] == final["rules"])
    res = {"pods_added_s": pods_s, "apply_s": t1 - t0, "done_after_apply_start_s": done - t0,
           "done_after_apply_exit_s": done - t1, "rules": final["rules"],
           "programs": final["programs"] - base["programs"],
           "program_seconds": final["sum"] - base["sum"]}
    print(json.dumps(res), flush=True)

    # The agent again from scratch: the stored 1,000 policies in one program.
    poller.stop()
    lab.lab("node", "stop", "node1")
    t2 = time.monotonic()
    agent, log = start_agent(lab, "node1")
    try:
        poller = lab.spawn(ns1, ["python3", "-u", "-c", POLLER, "0.01"])
        first = None
        end = time.monotonic() + 120
        while first is None and time.monotonic() < end:
            first = next(((t, v) for t, v in samples(poller) if v["count"] >= 1), None)
            time.sleep(0.05)
        if first is None:
            raise RuntimeError("the restarted agent never programmed")
        again = wait_quiet(poller, 3.0, 120, since=first[0])
        res["restart"] = {
            "first_program_s": first[1]["sum"] if first[1]["count"] == 1 else None,
            "first_programs_seen": first[1]["count"],
            "rules_at_first_program": first[1]["rules"],
            "start_to_programmed_s": first[0] - t2,
            "rules_settled": again["rules"],
        }
        print(json.dumps(res["restart"]), flush=True)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        log.close()
    return res


# --------------------------------------------------------------- iperf --

def server_policy(j, n):
    frm = "client" if j + 1 == n else "nobody"
    return f"""apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: p{j:04}, namespace: x}}
spec:
  order: {j}
  selector: app == 'server'
  ingress: [{{action: Allow, protocol: TCP, source: {{selector: app == '{frm}'}}, destination: {{ports: [15201]}}}}]
"""


CONNECT = r"""
import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print(1)
except OSError:
    print(0)
"""


def reachable(netns, ip, port):
    out = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", CONNECT, ip, str(port)],
                         capture_output=True, text=True).stdout.strip()
    return out == "1"


def iperf(a, lab):
    lab.up("--nodes", "2", "--pods-per-node", "0", "--mode", a.mode)
    for pod, node, app in (("client", "node1", "client"), ("third", "node1", "third"),
                           ("server", "node2", "other")):
        lab.lab("pod", "add", pod, "--node", node, "--namespace", "x", "--labels", f"app={app}")
    pods = lab.pods()
    cli, thd, srv = pods["x/client"], pods["x/third"], pods["x/server"]
    lab.spawn(srv["netns"], ["iperf3", "-s", "-p", "15201"])
    ns2 = lab.netns("node2")
    poller = lab.spawn(ns2, ["python3", "-u", "-c", POLLER, "0.05"])
    lab.apply("---\n".join(server_policy(j, a.policies) for j in range(a.policies)))
    wait_quiet(poller, 2.0, 300)

    def label(app):
        lab.ctl("--datastore", lab.ds, "label", "workloadendpoint", "node2-k8s-server-eth0",
                "-n", "x", f"app={app}", "--overwrite")
        end = time.monotonic() + 30
        want = app == "other"
        while reachable(thd["netns"], srv["ip"], 15201) != want:
            if time.monotonic() > end:
                raise RuntimeError(f"label app={app} not enforced")
            time.sleep(0.05)
        assert reachable(cli["netns"], srv["ip"], 15201)
        return wait_quiet(poller, 1.0, 60)

    def run():
        p = subprocess.run(["ip", "netns", "exec", cli["netns"], "iperf3", "-c", srv["ip"], "-p",
                            "15201", "-t", str(a.seconds), "-J"], capture_output=True, text=True,
                           check=True, timeout=a.seconds + 30)
        return json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9

    none, with_ = [], []
    rules = {}
    for _ in range(a.rounds):
        rules["none"] = label("other")["rules"]
        none.append(run())
        rules["with"] = label("server")["rules"]
        with_.append(run())
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    res = {"gbit_none": none, "gbit_with": with_, "median_none": med(none),
           "median_with": med(with_), "ratio_pct": 100 * med(with_) / med(none),
           "node2_rules": rules}
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["latency", "scale", "iperf"])
    ap.add_argument("--bin-dir", default=lablib.DEFAULT_BIN_DIR)
    ap.add_argument("--name", default=None, help="lab name (default tbpl / tbps / tbpi)")
    ap.add_argument("--mode", default="bgp", help="lab mode (latency, iperf)")
    ap.add_argument("--rounds", type=int, default=None, help="latency: 20, iperf: 3")
    ap.add_argument("--interval", type=float, default=0.005, help="latency: probe period (s)")
    ap.add_argument("--timeout", type=float, default=0.025, help="latency: connect timeout (s)")
    ap.add_argument("--debounce", type=int, default=3, help="latency: equal outcomes in a row")
    ap.add_argument("--gap", type=float, default=0.3, help="latency: pause between flips (s)")
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=200, help="scale: pods on node1")
    ap.add_argument("--seconds", type=int, default=5, help="iperf: seconds per run")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    a.rounds = a.rounds or {"latency": 20, "iperf": 3}.get(a.what, 1)
    name = a.name or {"latency": "tbpl", "scale": "tbps", "iperf": "tbpi"}[a.what]

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    out = {"machine": lablib.machine(), "what": a.what, "args": vars(a)}
    print(json.dumps(out["machine"]), flush=True)
    lab = Lab(a, name)
    try:
        out["result"] = {"latency": latency, "scale": scale, "iperf": iperf}[a.what](a, lab)
    finally:
        lab.down()
        out["machine_after"] = {"uptime": lablib.machine()["uptime"]}
        print(json.dumps(out["machine_after"]), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
