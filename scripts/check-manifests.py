#!/usr/bin/env python3
"""Checks what the Kubernetes schemas cannot: that manifests/*.yaml use only
options the binaries have, and refer to what exists.

    check-manifests.py VERSION TORTIE_NODE INSTALL_CNI MANIFEST...

- every TORTIE_* variable a container of the tortie image sets is one its
  command reads (`tortie-node --help` lists `[env: NAME=`, `install-cni
  --help` lists its variables), and every `--flag` in a command exists;
- every configMapKeyRef that is not optional names a key of a ConfigMap
  defined in the manifests;
- every image is localhost/tortie:VERSION (the workspace version).

Needs PyYAML (a dependency of kubernetes-validate, run from its venv).
Prints one line per problem and exits 1 if there is any.
"""

import re
import subprocess
import sys

import yaml


def help_text(binary):
    return subprocess.run([binary, "--help"], check=True, capture_output=True, text=True).stdout


def known_options(binary):
    text = help_text(binary)
    envs = set(re.findall(r"\[env: ([A-Z0-9_]+)=", text)) | set(re.findall(r"\b(TORTIE_[A-Z0-9_]+)\b", text))
    flags = set(re.findall(r"(--[a-z0-9-]+)", text))
    return envs, flags


def containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("initContainers", []) + spec.get("containers", [])


def main():
    version, node_bin, install_bin, *files = sys.argv[1:]
    commands = {"tortie-node": known_options(node_bin), "install-cni": known_options(install_bin)}
    docs = []
    for f in files:
        with open(f) as fh:
            docs += [(f, d) for d in yaml.safe_load_all(fh) if d]
    config_keys = {
        d["metadata"]["name"]: set((d.get("data") or {}).keys()) for _, d in docs if d.get("kind") == "ConfigMap"
    }
    problems = []
    for f, d in docs:
        for c in containers(d):
            where = f"{f}: {d['kind']}/{d['metadata']['name']} container {c['name']}"
            if c.get("image") != f"localhost/tortie:{version}":
                problems.append(f"{where}: image {c.get('image')!r} is not localhost/tortie:{version}")
            cmd = c.get("command", [])
            if not cmd or cmd[0] not in commands:
                problems.append(f"{where}: command {cmd!r} is not one of {sorted(commands)}")
                continue
            envs, flags = commands[cmd[0]]
            for arg in cmd[1:] + c.get("args", []):
                if arg.startswith("--") and arg.split("=")[0] not in flags:
                    problems.append(f"{where}: {cmd[0]} has no option {arg}")
            for e in c.get("env", []):
                if e["name"].startswith("TORTIE_") and e["name"] not in envs:
                    problems.append(f"{where}: {cmd[0]} does not read {e['name']}")
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref and not ref.get("optional") and ref["key"] not in config_keys.get(ref["name"], set()):
                    problems.append(f"{where}: {e['name']} needs key {ref['key']} of ConfigMap {ref['name']}, which has none")
    for p in problems:
        print(p)
    if not problems:
        print(f"check-manifests: {len(docs)} resources in {len(files)} files use only what the binaries read")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
