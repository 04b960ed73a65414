#!/usr/bin/env python3
"""Keeps data flowing one way between the modules of src/ (a folder counts as one module).

Every module has a layer; non-test code may only `use crate::X` (or write `crate::X::…`)
for modules of a lower layer. `#[cfg(test)]` modules and files of tests may import anything.
Prints each offending import and exits 1; prints the graph with --graph.
"""
import re
import sys
from pathlib import Path

# Higher layers may use lower ones, never the other way round.
LAYERS = [
    ["env", "report", "secret", "private_file", "path_lookup"],
    ["clock", "fault", "registry"],
    ["model", "protocol", "settings"],
    ["policy", "gitlab", "docker"],
    ["datadir"],
    ["store"],
    ["records"],
    ["renew"],
    ["sources"],
    ["commands"],
    ["cli", "testing"],
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
SRC = Path(__file__).resolve().parent.parent / "src"
USE = re.compile(r"\bcrate::([a-z_]+)")


def module_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".rs")


def non_test_code(text: str) -> str:
    """The file without its `#[cfg(test)] mod … { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def main() -> int:
    edges, bad = {}, []
    for path in sorted(SRC.rglob("*.rs")):
        if path.name in ("lib.rs", "main.rs") or "fuzz_tests" in path.name or path.name == "tests.rs":
            continue
        me = module_of(path)
        if me not in RANK:
            bad.append(f"{path.relative_to(SRC.parent)}: module `{me}` has no layer in {Path(__file__).name}")
            continue
        for used in set(USE.findall(non_test_code(path.read_text()))):
            if used == me or used not in RANK:
                continue
            edges.setdefault(me, set()).add(used)
            if RANK[used] >= RANK[me]:
                bad.append(f"{path.relative_to(SRC.parent)}: `{me}` (layer {RANK[me]}) uses `{used}` (layer {RANK[used]})")
    if "--graph" in sys.argv:
        for m in sorted(edges, key=lambda m: -RANK[m]):
            print(f"{m} -> {', '.join(sorted(edges[m], key=lambda u: -RANK[u]))}")
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} import(s) against the layers", file=sys.stderr)
        return 1
    print(f"layers: {len(edges)} modules, every import points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
