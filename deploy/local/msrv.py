#!/usr/bin/env python3
"""Checks that the workspace's rust-version is at least what every locked dependency declares.

Clippy's incompatible_msrv lint (run with -D warnings) keeps Hive's own code within the
declared version; this keeps the declaration honest about the dependencies in Cargo.lock.
"""
import json
import subprocess
import sys


def version(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
ours = {p["id"] for p in meta["packages"] if p["source"] is None}
declared = {p["name"]: p.get("rust_version") for p in meta["packages"] if p["id"] in ours}
missing = sorted(n for n, v in declared.items() if not v)
if missing:
    sys.exit(f"msrv: crates without rust-version.workspace = true: {', '.join(missing)}")
msrv = min(version(v) for v in declared.values())
needed = max(
    ((version(p["rust_version"]), f'{p["name"]} {p["version"]}')
     for p in meta["packages"]
     if p["id"] not in ours and p.get("rust_version")),
    default=((0, 0, 0), "nothing"),
)
if needed[0] > msrv:
    want = ".".join(map(str, needed[0]))
    sys.exit(f"msrv: rust-version {'.'.join(map(str, msrv))} is below {want}, which {needed[1]} needs")
print(f"msrv: rust-version {'.'.join(map(str, msrv))} covers every locked dependency (highest: {needed[1]})")
