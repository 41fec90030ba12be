#!/usr/bin/env bash
# The whole product in IPIP CrossSubnet mode (issue #9): this kernel has no
# ipip module, so `tortiectl lab up --mode ipip-crosssubnet` runs in a QEMU
# VM booting Debian's kernel (tests/ipip-vm/, guest-lab.sh). Builds
# tortiectl, tortie-node, tortie and tortie-ipam, then boots.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --locked -q -p tortiectl -p tortie-cni -p tortie-node
IPIP_VM_GUEST=lab bash tests/ipip-vm/run.sh "$CARGO_TARGET_DIR/debug"
