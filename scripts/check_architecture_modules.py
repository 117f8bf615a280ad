#!/usr/bin/env python3
"""Lists the source modules of the workspace that `docs/architecture.md` does not name.

Every `.rs` file under `crates/*/src` is a module (`mod.rs`, `lib.rs` and `main.rs` stand for
their folder or crate). A module counts as named when the document mentions, inside backticks,
its file name (`draw_file.rs`), its path below `src` (`run/draw_file.rs`), its module path
(`run::draw_file`) or its bare name (`draw_file`) as a whole word. Prints the modules not named
and exits with 1 if there are any.

Usage (Python standard library only): scripts/check_architecture_modules.py
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules():
    """Yields (crate, path below src, module path) for every module file."""
    crates = os.path.join(ROOT, "crates")
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        for folder, _, files in sorted(os.walk(src)):
            for name in sorted(files):
                if not name.endswith(".rs"):
                    continue
                relative = os.path.relpath(os.path.join(folder, name), src)
                parts = relative[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                if not parts:
                    continue  # The crate root is named by the crate.
                yield crate, relative, "::".join(parts)


def main():
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as handle:
        text = handle.read()
    # Fenced blocks would pair the backticks wrongly; their text counts as named too. Inline
    # code may wrap onto the next line, so backticks are paired both across the whole text and
    # within each line, and a name found either way counts.
    fenced = re.findall(r"```.*?```", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = re.findall(r"`([^`]+)`", text) + fenced
    for line in text.splitlines():
        spans.extend(line.split("`")[1::2])
    words = set()
    for span in spans:
        words.add(span)
        words.update(re.findall(r"[A-Za-z0-9_:/.]+", span))
        words.update(re.findall(r"[A-Za-z0-9_]+", span))
    missing = []
    for crate, relative, path in modules():
        stem = path.split("::")[-1]
        candidates = {relative, os.path.basename(relative), path, stem, relative.replace(os.sep, "/")}
        if not candidates & words:
            missing.append(f"{crate}: {relative} ({path})")
    for line in missing:
        print(line)
    total = sum(1 for _ in modules())
    print(f"{total - len(missing)} of {total} modules named in docs/architecture.md")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
