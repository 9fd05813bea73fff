#!/usr/bin/env python3
"""Checks the links of the README and the docs book: every relative link names a file that
exists, and every `#fragment` names a heading of its target (as mdBook and GitHub make
ids). Every chapter in SUMMARY.md exists. Exit status 1 on a broken link, each printed as
`file:line: why`.
"""
import os
import re
import sys

LINK = re.compile(r"\]\(([^)\s]*)\)")


def slug(text):
    text = re.sub(r"`", "", text.strip().lower())
    text = re.sub(r"[^a-z0-9 _-]", "", text)
    return text.replace(" ", "-")


def headings(path):
    ids, seen, fence = set(), {}, False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
            continue
        m = re.match(r"^#+ (.*)", line)
        if m and not fence:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            ids.add(s if n == 0 else f"{s}-{n}")
    return ids


def check(path, problems):
    fence = False
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, frag = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(dest):
                problems.append(f"{path}:{no}: `{target}`: no file {dest}")
                continue
            if frag and dest.endswith(".md") and frag not in headings(dest):
                problems.append(f"{path}:{no}: `{target}`: no heading #{frag} in {dest}")


def main():
    problems = []
    files = ["README.md"]
    for d, _, names in os.walk("docs/src"):
        files += [os.path.join(d, n) for n in sorted(names) if n.endswith(".md")]
    for f in files:
        check(f, problems)
    for p in problems:
        print(p)
    if problems:
        print(f"doclinks: {len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"doclinks: every link of {len(files)} files resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
