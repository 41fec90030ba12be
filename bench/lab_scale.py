#!/usr/bin/env python3
"""A large lab (issue 9: 50 nodes, 2 route reflectors): time to all-ready
and memory per agent.

Starts `tortiectl lab up` and, beside it, watches the lab from the outside:
- phases from the lab's state file (written after every step): state
  directory created, first and last tortie-node started, pods created;
- every agent's status on its control socket (`{"request":"status"}`, the
  same query as `tortiectl node status`), every 0.25 s: when each node is
  first ready (`/readyz` semantics) and first settled (ready, FIB in sync,
  every peer Established — what `lab up` waits for);
- after all are ready: VmRSS / VmHWM / threads of every tortie-node from
  /proc/PID/status (PIDs from state.json) and the agents' CPU use while
  the lab is idle.
The lab is taken down at the end, also on failure or Ctrl-C.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib  # noqa: E402


def query(sock_path, timeout=2.0):
    """One status query on a tortie-node control socket; None on failure."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(b'{"request":"status"}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf).get("status")
    except (OSError, ValueError):
        return None


def is_settled(s):
    return bool(s and s["ready"] and s["fib"]["in_sync"]
                and all(p["state"] == "Established" for p in s["peers"]))


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def wakeups(pid):
    """Voluntary context switches summed over the process's threads."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    except OSError:
        pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=lablib.DEFAULT_BIN_DIR)
    ap.add_argument("--name", default="tbscale")
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--route-reflectors", type=int, default=2)
    ap.add_argument("--pods-per-node", type=int, default=0)
    ap.add_argument("--mode", default="bgp")
    ap.add_argument("--limit", type=float, default=300.0, help="give up waiting for all-ready after (s)")
    ap.add_argument("--idle", type=float, default=10.0, help="idle CPU sampling window after ready (s)")
    ap.add_argument("--ping", action="store_true", help="after the measurements, `lab ping` (every pod to every pod)")
    ap.add_argument("--json", help="write the full result here")
    a = ap.parse_args()

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    state_file = os.path.join(lablib.STATE_ROOT, a.name, "state.json")
    if os.path.exists(state_file):
        sys.exit(f"lab {a.name} exists: tortiectl lab down --name {a.name}")
    result = {"machine_before": lablib.machine(), "args": vars(a)}
    print("machine:", json.dumps(result["machine_before"]))
    up = None
    try:
        t0 = time.monotonic()
        up = subprocess.Popen(
            [os.path.join(a.bin_dir, "tortiectl"), "lab", "up", "--name", a.name,
             "--nodes", str(a.nodes), "--route-reflectors", str(a.route_reflectors),
             "--pods-per-node", str(a.pods_per_node), "--mode", a.mode],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        up_out = []
        reader = threading.Thread(target=lambda: up_out.extend(up.stdout), daemon=True)
        reader.start()
        phases, first_ready, first_settled = {}, {}, {}
        all_ready_at = all_settled_at = None
        names = None
        while True:
            now = time.monotonic() - t0
            if up.poll() is not None and "lab_up_exit" not in phases:
                phases["lab_up_exit"] = now
                if up.returncode != 0:
                    reader.join(2)
                    raise RuntimeError("lab up failed:\n" + "".join(up_out))
            try:
                with open(state_file) as f:
                    st = json.load(f)
            except (OSError, ValueError):
                st = None
            if st:
                phases.setdefault("state_written", now)
                plan = st["plan"]
                if names is None:
                    nodes = ([plan["router_node"]] if plan.get("router_node") else []) + \
                        plan.get("route_reflectors", []) + plan["nodes"]
                    names = {n["name"]: n["control_socket"] for n in nodes}
                npids = len(st["pids"])
                if npids:
                    phases.setdefault("first_agent_started", now)
                if npids == len(names):
                    phases.setdefault("all_agents_started", now)
                if a.pods_per_node and len(st["pod_ips"]) == len(plan["pods"]):
                    phases.setdefault("all_pods_created", now)
            if names:
                statuses = {n: query(p) for n, p in names.items()}
                for n, s in statuses.items():
                    if s and s["ready"]:
                        first_ready.setdefault(n, now)
                    if is_settled(s):
                        first_settled.setdefault(n, now)
                if all_ready_at is None and all(s and s["ready"] for s in statuses.values()):
                    all_ready_at = now
                if all_settled_at is None and all(is_settled(s) for s in statuses.values()):
                    all_settled_at = now
            if all_settled_at is not None and "lab_up_exit" in phases:
                break
            if now > a.limit:
                not_ready = sorted(set(names or []) - set(first_settled))
                print(f"gave up after {a.limit} s; not settled: {not_ready}")
                break
            time.sleep(0.25)
        reader.join(5)
        print("".join(up_out).splitlines()[0] if up_out else "(no lab up output)")
        result.update(phases=phases, all_ready_s=all_ready_at, all_settled_s=all_settled_at,
                      first_ready=first_ready, first_settled=first_settled)
        print("phases (s from lab up start):", json.dumps({k: round(v, 2) for k, v in phases.items()}))
        print(f"all ready at {all_ready_at} s, all settled at {all_settled_at} s "
              f"({len(first_ready)}/{len(names or [])} ever ready)")
        st = lablib.load_state(a.name)
        pids = st["pids"]
        mem = {n: proc_status(pid) for n, pid in pids.items()}
        c0 = {n: cpu_ticks(pid) for n, pid in pids.items()}
        w0 = {n: wakeups(pid) for n, pid in pids.items()}
        time.sleep(a.idle)
        c1 = {n: cpu_ticks(pid) for n, pid in pids.items()}
        w1 = {n: wakeups(pid) for n, pid in pids.items()}
        idle_wakeups = {n: (w1[n] - w0[n]) / a.idle for n in pids}
        hz = os.sysconf("SC_CLK_TCK")
        idle_cpu = {n: (c1[n] - c0[n]) / hz / a.idle for n in pids}
        mem_after = {n: proc_status(pid) for n, pid in pids.items()}
        result.update(mem_at_ready=mem, mem_after_idle=mem_after, idle_cpu_share=idle_cpu,
                      idle_wakeups_per_s=idle_wakeups)

        def group(n):
            return "router" if n == "router" else ("route reflector" if n.startswith("rr") else "node")

        for g in ("node", "route reflector", "router"):
            members = [n for n in pids if group(n) == g]
            if not members:
                continue
            rss = sorted(mem_after[n].get("VmRSS", 0) / 1024 for n in members)
            hwm = sorted(mem_after[n].get("VmHWM", 0) / 1024 for n in members)
            thr = sorted(mem_after[n].get("Threads", 0) for n in members)
            cpu = sum(idle_cpu[n] for n in members)
            wk = sorted(idle_wakeups[n] for n in members)
            print(f"{g:>15} x{len(members)}: VmRSS MiB min {rss[0]:.1f} p50 {lablib.percentile(rss, 50):.1f} "
                  f"max {rss[-1]:.1f}; VmHWM max {hwm[-1]:.1f}; threads {thr[0]}-{thr[-1]}; "
                  f"idle CPU {cpu:.2f} cores in total, p50 {lablib.percentile(wk, 50):.0f} wakeups/s per agent")
        total_cpu = sum(idle_cpu.values())
        print(f"all agents idle CPU: {total_cpu:.2f} cores; load after: {lablib.machine()['uptime']}")
        result["machine_after"] = lablib.machine()
        if a.ping:
            p = lablib.tortiectl(a.bin_dir, "lab", "ping", "--name", a.name, "-o", "json", check=False, timeout=900)
            result["ping"] = json.loads(p.stdout) if p.stdout.strip() else {"error": p.stderr}
            print("lab ping:", {k: v for k, v in result["ping"].items() if k != "failed"},
                  "failed:", len(result["ping"].get("failed", [])))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0 if all_settled_at is not None else 1
    finally:
        if up and up.poll() is None:
            up.terminate()  # lab up cleans up on SIGTERM
            try:
                up.wait(120)
            except subprocess.TimeoutExpired:
                up.kill()
        lablib.lab_down(a.bin_dir, a.name)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
