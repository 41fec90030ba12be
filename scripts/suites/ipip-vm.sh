#!/usr/bin/env bash
# felix's IPIP tests: this kernel has no ipip module, so they run in a QEMU
# VM booting Debian's kernel (tests/ipip-vm/). Builds felix-apply, then boots.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --locked -q -p tortie-felix-dataplane --example felix-apply
bash tests/ipip-vm/run.sh "$CARGO_TARGET_DIR/debug/examples/felix-apply"
