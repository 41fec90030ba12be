#!/usr/bin/env bash
# Removes network namespaces left by interrupted test runs (only ours: names
# starting with "tt"), killing the processes inside them first.
set -uo pipefail
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^tt[a-z0-9]*-' || true); do
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
done
exit 0
