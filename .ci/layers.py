#!/usr/bin/env python3
"""The layering check: within each crate, a folder (or top-level file) sits on a floor, and
no `crate::` path may name a module on a higher floor. Also: no source file over
MAX_LINES lines, and no folder with more than MAX_LOOSE loose `.rs` files.

Run from the repository root: `python3 .ci/layers.py`. Exit status 1 on any violation,
each printed as `file:line: why`.
"""
import os
import re
import sys

MAX_LINES = 500
MAX_LOOSE = 8

# Floors, lowest first. A module may use modules on its own floor or below.
FLOORS = {
    "proxy/upstream/src": [
        ["error", "stream", "stop", "mailbox"],
        ["config"],
        ["stats"],
        ["tls", "reply_error"],
        ["conn"],
        ["topology", "replicas", "facts"],
        ["backplane"],
        ["watch"],
        ["route"],
    ],
    "proxy/core/src": [
        ["error", "stream"],
        ["config"],
        ["metrics"],
        ["auth", "tls"],
        ["command", "emulate"],
        ["cache"],
        ["state", "fleet", "tracking"],
        ["report"],
        ["client"],
        ["admin"],
        ["server"],
    ],
    "proxy/reshard/src": [
        ["error"],
        ["view"],
        ["plan"],
        ["session"],
        ["run"],
        ["members", "standalone"],
    ],
}

# Items the crate root re-exports, and the module each comes from.
ROOT_ITEMS = {
    "proxy/upstream/src": {
        "Backplane": "backplane",
        "BURST": "stop",
        "Auth": "conn",
        "Inbox": "conn",
        "Job": "conn",
        "Proto": "conn",
        "ReplyTx": "conn",
        "Tag": "conn",
    },
    "proxy/core/src": {},
    "proxy/reshard/src": {"ReshardError": "error"},
}

# Folders exempt from the loose-file count, with the reason.
LOOSE_EXEMPT = {}

PATH = re.compile(r"\bcrate::(\w+)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def strip_comments(line):
    at = line.find("//")
    return line if at < 0 else line[:at]


def group_heads(group):
    """The first path segment of each top-level element of `use crate::{...}`'s group:
    `a::{B, c}, d` gives `a` and `d`."""
    heads, depth, current = [], 0, ""
    for ch in group + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            head = current.strip().split("::")[0].strip()
            if head:
                heads.append(head)
            current = ""
            continue
        if depth == 0 or ch not in "{}":
            current += ch if depth == 0 else ""
    return heads


def floor_of(table, module):
    for i, floor in enumerate(table):
        if module in floor:
            return i
    return None


def check_layers(root, table, items, problems):
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel == "lib.rs":
                continue
            own = rel.split(os.sep)[0].removesuffix(".rs")
            own_floor = floor_of(table, own)
            if own_floor is None:
                problems.append(f"{path}:1: module `{own}` is on no floor in .ci/layers.py")
                continue
            text = open(path, encoding="utf-8").read()
            lines = [strip_comments(l) for l in text.split("\n")]
            code = "\n".join(lines)
            found = []
            for m in PATH.finditer(code):
                found.append((code.count("\n", 0, m.start()) + 1, m.group(1)))
            for m in USE_GROUP.finditer(code):
                line = code.count("\n", 0, m.start()) + 1
                for head in group_heads(m.group(1)):
                    found.append((line, head))
            for line, target in found:
                target = items.get(target, target)
                if target == own or target in ("self", "super"):
                    continue
                t_floor = floor_of(table, target)
                if t_floor is None:
                    if target[:1].isupper() or target.isupper():
                        problems.append(f"{path}:{line}: `crate::{target}` is not in ROOT_ITEMS")
                    continue
                if t_floor > own_floor:
                    problems.append(
                        f"{path}:{line}: `{own}` (floor {own_floor}) imports `crate::{target}` (floor {t_floor}), a higher floor"
                    )


def check_sizes(problems):
    for top in ["common", "proxy", "module", "tests", "benches"]:
        for dirpath, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("target", "fuzz")]
            rs = [f for f in files if f.endswith(".rs")]
            if len(rs) > MAX_LOOSE and dirpath not in LOOSE_EXEMPT:
                problems.append(f"{dirpath}:1: {len(rs)} loose .rs files (at most {MAX_LOOSE})")
            for f in rs:
                p = os.path.join(dirpath, f)
                n = sum(1 for _ in open(p, encoding="utf-8"))
                if n > MAX_LINES:
                    problems.append(f"{p}:{n}: {n} lines (at most {MAX_LINES})")


def main():
    problems = []
    for root, table in FLOORS.items():
        check_layers(root, table, ROOT_ITEMS[root], problems)
    check_sizes(problems)
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("layers: every import goes down a floor; files and folders within bounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
