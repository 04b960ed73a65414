#!/usr/bin/env python3
"""Keeps the shape of src/ that the code review asked for, so it cannot drift back:

- data flows one way between the modules of src/ (a folder counts as one module): every
  module has a layer, and non-test code may only `use crate::X` (or write `crate::X::…`)
  for modules of a lower layer; `#[cfg(test)]` modules may import anything;
- the environment is read in src/env.rs only;
- no file of src/ is over 600 lines (test modules included), and no non-test function is
  over 80 lines from `fn` to its closing brace.

Prints each offence and exits 1; `--graph` also prints the module graph.
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
    ["datadir", "vault"],
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
ENV_READ = re.compile(r"std::env::(var|var_os|vars|vars_os)\b")
FN = re.compile(r"^(\s*)(pub(\([a-z]+\))?\s+)?(const\s+)?(async\s+)?fn\s+(\w+)")
MAX_FILE_LINES, MAX_FN_LINES = 600, 80


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


def sizes(path: Path, text: str) -> list[str]:
    """Files over MAX_FILE_LINES; functions of non-test code over MAX_FN_LINES."""
    where = path.relative_to(SRC.parent)
    lines = text.split("\n")
    bad = [f"{where}: {len(lines)} lines (at most {MAX_FILE_LINES})"] if len(lines) > MAX_FILE_LINES else []
    code = non_test_code(text).split("\n")
    for i, line in enumerate(code):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        end = next(
            (j for j in range(i, len(code)) if code[j].rstrip() == m.group(1) + "}"), i
        )
        if end - i + 1 > MAX_FN_LINES:
            bad.append(f"{where}: fn {m.group(6)} is {end - i + 1} lines (at most {MAX_FN_LINES})")
    return bad


def main() -> int:
    edges, bad = {}, []
    for path in sorted(SRC.rglob("*.rs")):
        text = path.read_text()
        bad += sizes(path, text)
        if path.name != "env.rs" and ENV_READ.search(non_test_code(text)):
            bad.append(f"{path.relative_to(SRC.parent)}: reads the environment (only src/env.rs may)")
        if path.name in ("lib.rs", "main.rs") or "fuzz_tests" in path.name or path.name == "tests.rs":
            continue
        me = module_of(path)
        if me not in RANK:
            bad.append(f"{path.relative_to(SRC.parent)}: module `{me}` has no layer in {Path(__file__).name}")
            continue
        for used in set(USE.findall(non_test_code(text))):
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
        print(f"{len(bad)} offence(s) against the structure", file=sys.stderr)
        return 1
    print(f"structure: {len(edges)} modules, every import points down; files and functions within bounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
