#!/usr/bin/env bash
# manifests/*.yaml against the official Kubernetes schemas, offline
# (kubernetes-validate from PyPI, --strict: unknown fields are errors), for
# the oldest and the newest Kubernetes version we state support for; then
# scripts/check-manifests.py: every option and variable the manifests give
# the binaries exists in them. A deliberately broken copy must fail both, so
# a validator that passes everything is caught. Takes ~1 min the first time
# (venv + pip install into target/tools/), seconds after.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

KV_VERSION=1.37.0               # kubernetes-validate, pinned
K8S_VERSIONS=(1.28.0 1.37.0)    # oldest and newest Kubernetes we validate against
VENV=${CARGO_TARGET_DIR:-$PWD/target}/tools/kubernetes-validate-$KV_VERSION

if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    echo "manifests: installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv
  fi
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi

MANIFESTS=(manifests/tortie.yaml manifests/tortie-rr.yaml)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tortie-manifests.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The control: an unknown field and an option tortie-node does not have.
sed 's/^      hostNetwork: true/      hostNetwork: true\n      hostNetwrk: true/; s/"--dataplane", "none"/"--data-plane", "none"/' \
  manifests/tortie-rr.yaml >"$WORK/broken.yaml"

for v in "${K8S_VERSIONS[@]}"; do
  echo "manifests: kubernetes-validate --strict -k $v"
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "${MANIFESTS[@]}"
  if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$WORK/broken.yaml" >/dev/null 2>&1; then
    echo "manifests: kubernetes-validate accepted an unknown field (hostNetwrk); the check is not working" >&2
    exit 1
  fi
done

cargo build --locked -q -p tortie-node -p tortie-cni --bins
BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
"$VENV/bin/python" scripts/check-manifests.py "$VERSION" "$BIN/tortie-node" "$BIN/install-cni" "${MANIFESTS[@]}"
if "$VENV/bin/python" scripts/check-manifests.py "$VERSION" "$BIN/tortie-node" "$BIN/install-cni" \
  manifests/tortie.yaml "$WORK/broken.yaml" >/dev/null; then
  echo "manifests: check-manifests accepted --data-plane; the check is not working" >&2
  exit 1
fi
echo "manifests: OK"
