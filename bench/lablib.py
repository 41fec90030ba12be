"""Shared helpers of the lab benchmarks: run tortiectl, read the lab's
state and node status, percentiles, and the machine summary printed with
every result. Drives the release binaries only; creates nothing outside
the lab's own `<name>-*` namespaces."""

import json
import math
import os
import subprocess
import time

DEFAULT_BIN_DIR = os.environ.get(
    "TORTIE_BIN_DIR",
    os.path.join(os.environ.get("CARGO_TARGET_DIR", "/work/target-bench"), "release"),
)
STATE_ROOT = "/run/tortie-lab"


def tortiectl(bin_dir, *args, check=True, capture=True, timeout=None):
    """Runs `tortiectl ARGS`; returns the CompletedProcess."""
    cmd = [os.path.join(bin_dir, "tortiectl"), *args]
    return subprocess.run(
        cmd, check=check, capture_output=capture, text=True, timeout=timeout
    )


def lab_status(bin_dir, name):
    """`tortiectl lab status -o json` as a dict, or None while it fails."""
    p = tortiectl(bin_dir, "lab", "status", "--name", name, "-o", "json", check=False)
    if p.returncode != 0:
        return None
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return None


def settled(node):
    """The lab's own `settled`: ready, FIB in sync, every peer Established."""
    s = node.get("status")
    return bool(
        s
        and s["ready"]
        and s["fib"]["in_sync"]
        and all(p["state"] == "Established" for p in s["peers"])
    )


def wait_settled(bin_dir, name, limit=120.0):
    """Waits until every node of the lab is settled; returns the seconds
    waited, or raises with the nodes that are not."""
    start = time.monotonic()
    while True:
        st = lab_status(bin_dir, name)
        if st and all(settled(n) for n in st["nodes"]):
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            bad = [n["name"] for n in (st or {}).get("nodes", []) if not settled(n)]
            raise RuntimeError(f"lab {name}: not settled after {limit} s: {bad}")
        time.sleep(0.2)


def load_state(name):
    with open(os.path.join(STATE_ROOT, name, "state.json")) as f:
        return json.load(f)


def lab_down(bin_dir, name):
    """`tortiectl lab down`; never raises (used in finally blocks)."""
    try:
        p = tortiectl(bin_dir, "lab", "down", "--name", name, check=False, timeout=600)
        print((p.stdout + p.stderr).strip())
    except Exception as e:  # noqa: BLE001 - cleanup must not mask the real error
        print(f"lab down --name {name} failed: {e}")


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def summary(values):
    """n, p50, p90, p99, max (same unit as the values)."""
    v = sorted(values)
    return {
        "n": len(v),
        "p50": percentile(v, 50),
        "p90": percentile(v, 90),
        "p99": percentile(v, 99),
        "max": v[-1] if v else float("nan"),
    }


def fmt_ms(s):
    return "n=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f ms" % (
        s["n"], s["p50"], s["p90"], s["p99"], s["max"],
    )


def machine():
    """What the result was measured on and how busy the machine was."""
    def out(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    return {
        "date_utc": out("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
        "nproc": out("nproc"),
        "kernel": out("uname", "-r"),
        "mem": out("sh", "-c", "grep MemTotal /proc/meminfo"),
        "uptime": out("uptime"),
    }
