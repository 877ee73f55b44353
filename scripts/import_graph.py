#!/usr/bin/env python
"""Check fastbp's import graph: no cycle between its modules, and no import from a higher layer.

    python scripts/import_graph.py            # prints the layers and each module's imports; exit 1 on a fault

The layers, highest first (docs/index.md): the public face (fastbp/*.py, datasets/, sweep/) → training/ →
engine/ → specs/ → common/ and _numba/. A module may import its own layer and those below, never above. The
graph is read from the sources (every ``import`` and ``from ... import`` naming a fastbp module, at any depth
of the code), so an import inside a function counts as one at the top.
"""

import argparse
import ast
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fastbp")
LAYERS = {"training": 3, "engine": 2, "specs": 1, "common": 0, "_numba": 0, "_version": 0}  # the rest: 4, the public face


def module_name(path):
    rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def layer(mod):
    parts = mod.split(".")
    return LAYERS.get(parts[1], 4) if len(parts) > 1 else 4


def imports(path, mod, known):
    """The fastbp modules ``mod`` (at ``path``) imports."""
    is_pkg = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [origin] + [f"{origin}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != mod and name != "fastbp":
                out.add(name)
    return out


def main():
    paths = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                p = os.path.join(folder, f)
                paths[module_name(p)] = p
    graph = {m: imports(p, m, paths) for m, p in sorted(paths.items())}
    faults = []
    for m, deps in graph.items():
        for d in sorted(deps):
            if layer(d) > layer(m):
                faults.append(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)}): a higher layer")
    # Cycles: a depth-first search over the module graph.
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                faults.append("cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)
    for m, deps in graph.items():
        print(f"{layer(m)} {m}: {', '.join(sorted(deps)) or '-'}")
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports")
    for f in faults:
        print("FAULT", f)
    print("no cycle, no import from a higher layer" if not faults else f"{len(faults)} faults")
    return 1 if faults else 0


if __name__ == "__main__":
    argparse.ArgumentParser(prog="scripts/import_graph.py", description=__doc__.split("\n\n")[0]).parse_args()
    sys.exit(main())
