#!/usr/bin/env python3
"""Fails when the files of one crate import each other in a circle, or when a file imports an
item that its own parent module (an ancestor's `mod.rs`, `lib.rs` or `main.rs`) defines.

Both mean a shared type lives in the wrong file: the parent wires its children together, so a
child reaching back up for something the parent holds ties the two into one unit. Re-exports
(`pub use`) are followed to the file that defines the item, so importing a re-exported type
through `crate::Name` is an edge to its real home, not to `lib.rs`.

    python3 scripts/check-imports.py            # every crate of the workspace; exit 1 on a finding
    python3 scripts/check-imports.py --edges    # also print every file-to-file edge

Only `use` declarations count (paths written out inline are not followed). Test modules
(`tests.rs`, `*_tests.rs`, `testutil.rs`) may import from their parent: that is what they test.
"""

import re
import sys
from pathlib import Path

CRATES = ["protocol", "storage", "http-gateway", "chain", "node", "tests"]
ROOTS = ["lib.rs", "main.rs"]
TEST_FILE = re.compile(r"(^|_)tests?\.rs$|^testutil\.rs$")

USE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
ITEM = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+|async\s+|const\s+|extern\s+\"C\"\s+)*"
    r"(?:struct|enum|fn|trait|type|const|static|union|macro_rules!)\s+([A-Za-z_][A-Za-z0-9_]*)",
    re.M,
)
EXTERNAL = ("<another crate>",)
INLINE_PATH = re.compile(r"(?<![\w:])((?:[a-z_][a-z0-9_]*::)+[A-Za-z_][A-Za-z0-9_]*)")
MOD = re.compile(r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


INLINE_MOD = re.compile(r"\bmod\s+[a-z_][a-z0-9_]*\s*\{")


def strip_comments(text):
    """The text without comments and without inline modules (`mod tests { ... }`), whose `use`
    declarations are relative to themselves and whose imports are the test's business."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    while (m := INLINE_MOD.search(text)) is not None:
        depth, end = 0, len(text)
        for j in range(m.end() - 1, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    end = j + 1
                    break
        text = text[: m.start()] + text[end:]
    return text


def expand(tree):
    """`a::{b, c::{d, e as f}, self}` -> [["a","b"], ["a","c","d"], ["a","c","e"], ["a"]]."""
    tree = re.sub(r"\s*(::|[{},])\s*", r"\1", re.sub(r"\s+", " ", tree.strip()))
    out = []

    def walk(prefix, s):
        i = s.find("{")
        if i < 0:
            name = s.split(" as ")[0]
            parts = [p for p in name.split("::") if p]
            if parts and parts[-1] == "self":
                parts = parts[:-1]
            out.append(prefix + parts)
            return
        head = [p for p in s[:i].split("::") if p]
        body = s[i + 1 : s.rfind("}")]
        depth, start = 0, 0
        for j, ch in enumerate(body + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                piece = body[start:j]
                start = j + 1
                if piece:
                    walk(prefix + head, piece)

    walk([], tree)
    return out


class Crate:
    def __init__(self, src):
        self.src = src
        self.modules = {}  # module path (tuple) -> file
        self.files = {}  # file -> module path
        root = next((src / r for r in ROOTS if (src / r).exists()), None)
        if root is None:
            raise SystemExit(f"check-imports: no lib.rs or main.rs in {src}")
        self.load((), root)

    def load(self, path, file):
        self.modules[path] = file
        self.files[file] = path
        text = strip_comments(file.read_text(encoding="utf-8"))
        base = file.parent if file.name in ROOTS + ["mod.rs"] else file.parent / file.stem
        for name in MOD.findall(text):
            for child in (base / f"{name}.rs", base / name / "mod.rs"):
                if child.exists():
                    self.load(path + (name,), child)
                    break

    def text(self, file):
        return strip_comments(file.read_text(encoding="utf-8"))

    def defines(self, file, name):
        return name in ITEM.findall(self.text(file))

    def reexport(self, file, name):
        """Where a `pub use` in `file` takes `name` from: a module path of this crate, EXTERNAL
        for another crate's item, or None when `file` re-exports no such name."""
        module = self.files[file]
        for vis, tree in USE.findall(self.text(file)):
            if not vis:
                continue
            for parts in expand(tree):
                full = self.absolute(module, parts)
                if full is None:
                    if parts and parts[-1] == name:
                        return EXTERNAL
                    continue
                if full and full[-1] == name:
                    return full
                if full and full[-1] == "*":
                    return full[:-1] + (name,)
        return None

    def absolute(self, module, parts):
        """A `use` path made absolute within the crate, or None for another crate's path."""
        if not parts:
            return None
        if parts[0] == "crate":
            return tuple(parts[1:])
        if parts[0] in ("self", "super"):
            base = list(module)
            rest = list(parts)
            while rest and rest[0] in ("self", "super"):
                if rest.pop(0) == "super":
                    if not base:
                        return None
                    base.pop()
            return tuple(base + rest)
        # 2018 paths: a child module of the current one.
        if tuple(module) + (parts[0],) in self.modules:
            return tuple(module) + tuple(parts)
        return None

    def resolve(self, path, seen=None):
        """The file defining the item at `path`, or the module file when the path names a module."""
        seen = seen or set()
        if path in seen:
            return None
        seen.add(path)
        i = len(path)
        while i > 0 and path[:i] not in self.modules:
            i -= 1
        file = self.modules[path[:i]]
        if i == len(path) or path[i] == "*":
            return file
        name = path[i]
        if self.defines(file, name):
            return file
        again = self.reexport(file, name)
        if again is EXTERNAL:
            return None
        if again is not None:
            return self.resolve(again + path[i + 1 :], seen)
        return file

    def edges(self):
        out = {}
        for file, module in self.files.items():
            for vis, tree in USE.findall(self.text(file)):
                # A re-export is a door, not a dependency: it is followed to the defining file
                # when someone imports through it.
                if vis:
                    continue
                for parts in expand(tree):
                    self.edge(out, file, module, parts)
            # Paths written out in the code (`super::client::ToWriter::Flush(..)`) tie files
            # together as much as a `use` does.
            for path in INLINE_PATH.findall(USE.sub("", self.text(file))):
                parts = path.split("::")
                if parts[0] in ("crate", "super", "self") or module + (parts[0],) in self.modules:
                    self.edge(out, file, module, parts)
        return out

    def edge(self, out, file, module, parts):
        full = self.absolute(module, parts)
        if full is None:
            return
        target = self.resolve(full)
        if target is not None and target != file:
            out.setdefault(file, set()).add((target, "::".join(parts)))


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def main():
    repo = Path(__file__).resolve().parent.parent
    show = "--edges" in sys.argv
    problems = 0
    for name in CRATES:
        crate = Crate(repo / name / "src")
        edges = crate.edges()
        rel = lambda f: str(f.relative_to(repo))  # noqa: E731
        graph = {}
        for src, targets in edges.items():
            test = bool(TEST_FILE.search(src.name))
            for target, via in sorted(targets, key=lambda t: (str(t[0]), t[1])):
                if show:
                    print(f"{rel(src)} -> {rel(target)}  ({via})")
                is_parent = target.name in ROOTS + ["mod.rs"] and src.is_relative_to(target.parent)
                module_named = crate.files[target] == tuple(
                    p for p in crate.absolute(crate.files[src], via.split("::")) or ()
                )
                if is_parent and not module_named and not test:
                    print(f"upward import: {rel(src)} takes {via} from its parent {rel(target)}")
                    problems += 1
                if not test:
                    graph.setdefault(src, set()).add(target)
        for comp in cycles(graph):
            print("import circle: " + " <-> ".join(rel(f) for f in comp))
            problems += 1
    if problems:
        print(f"check-imports: {problems} finding(s)", file=sys.stderr)
        return 1
    print("check-imports: no import circles or upward imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
