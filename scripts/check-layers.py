#!/usr/bin/python3
"""check-layers.py - the layering of src/ is checked, not hoped for (`make layers`).

Reads every `#include "..."` under src/ and fails when
  - a file includes a folder that is not its own nor below it in the layer map
    (peers on one rank may not include each other either), or a folder the map does not name;
  - a file of one folder and a file of another unit of the same folder include each other,
    directly or round a longer circle (a unit is x.c + x.h);
  - store/ names a backend outside the one file the map allows (the table of backends), or in
    more than one of the files it allows;
  - a file outside a folder includes that folder's private header (a name ending in
    _internal.h: sqlite_internal.h, http_internal.h, ...).

The map is NOT kept here: it is the ```layers block of docs/architecture.md, so the document
and the check cannot drift. Its syntax, one statement a line, `#` starts a comment:
  util                 a rank; ranks are listed lowest first
  store/sqlite store/pg  several names on one line are peers: neither includes the other
  main.c               a file at the top of src/ is a layer of its own, named by its file name
  allow store/store.c store/backends.c -> store/sqlite store/pg
                       these files may include those layers even if they are above; at most
                       one of the listed files may actually do it
  module auth/jwt auth/jwk  # why
                       units of one folder that are one module (a private header shared by
                       its .c files): no circle is reported between them; the why is required

Standard library only. Usage: check-layers.py [--root DIR] [--map FILE]; exit 0 when clean,
1 with one line per problem (file:line, the two layers), 2 when the map cannot be read.
"""

import argparse
import os
import re
import sys

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
BLOCK_RE = re.compile(r"^```layers\s*$")


class MapError(Exception):
    pass


def parse_map(text):
    """Returns (rank: {layer: int}, allows: [(files, layers)], modules: {unit: module}) from
    the ```layers block."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if BLOCK_RE.match(l)), None)
    if start is None:
        raise MapError("no ```layers block")
    rank, allows, modules = {}, [], {}
    for i in range(start + 1, len(lines)):
        line, _, why = lines[i].partition("#")
        line = line.strip()
        if lines[i].strip() == "```":
            break
        if not line:
            continue
        if line.startswith("module "):
            units = line[len("module ") :].split()
            if len(units) < 2 or len({os.path.dirname(u) for u in units}) != 1:
                raise MapError(f"line {i + 1}: module UNIT UNIT... (units of one folder)")
            if not why.strip():
                raise MapError(f"line {i + 1}: a module says why (# ...)")
            for u in units:
                modules[u] = "+".join(units)
            continue
        if line.startswith("allow "):
            left, sep, right = line[len("allow ") :].partition("->")
            if not sep or not left.split() or not right.split():
                raise MapError(f"line {i + 1}: allow FILE... -> LAYER...")
            allows.append((left.split(), right.split()))
            continue
        level = len(set(rank.values()))
        for name in line.split():
            if name in rank:
                raise MapError(f"line {i + 1}: {name} named twice")
            rank[name] = level
    else:
        raise MapError("the ```layers block is not closed")
    if not rank:
        raise MapError("the ```layers block is empty")
    for files, layers in allows:
        for name in layers:
            if name not in rank:
                raise MapError(f"allow names {name}, which is not a layer")
    return rank, allows, modules


def sources(src):
    """Every .c and .h under src, as paths relative to src with '/' separators, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for f in filenames:
            if f.endswith((".c", ".h")):
                rel = os.path.relpath(os.path.join(dirpath, f), src)
                out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def layer_of(rel, rank):
    """The deepest folder of rel that the map names (store/sqlite before store); a file at the
    top of src/ is its own layer; None when the map names no folder of it."""
    parts = rel.split("/")
    if len(parts) == 1:
        return rel if rel in rank else None
    for n in range(len(parts) - 1, 0, -1):
        name = "/".join(parts[:n])
        if name in rank:
            return name
    return None


def resolve(rel, target, known):
    """Where the compiler finds `#include "target"` from src/rel: beside the file first, then
    -Isrc. None for a header outside src/ (a system or vendored one)."""
    here = os.path.dirname(rel)
    for cand in (os.path.normpath(os.path.join(here, target)), os.path.normpath(target)):
        cand = cand.replace(os.sep, "/")
        if cand in known:
            return cand
    return None


def unit_of(rel):
    return rel[:-2]  # x.c and x.h are one unit: x


def cycles(graph):
    """One circle per strongly connected component of more than one node (Tarjan, iterative)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    n = stack.pop()
                    on.discard(n)
                    comp.add(n)
                    if n == node:
                        break
                if len(comp) > 1:
                    comps.append(comp)
    out = []
    for comp in comps:
        # a shortest circle through the component's first node (breadth first inside it)
        start = min(comp)
        prev, queue, found = {start: None}, [start], None
        while queue and found is None:
            nq = []
            for n in queue:
                for m in sorted(graph.get(n, ())):
                    if m not in comp:
                        continue
                    if m == start:
                        found = n
                        break
                    if m not in prev:
                        prev[m] = n
                        nq.append(m)
                if found is not None:
                    break
            queue = nq
        path = [found]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        out.append(path + [start])
    return sorted(out)


def check(root, map_path):
    """Returns the list of problems, one line each."""
    with open(map_path, encoding="utf-8") as f:
        rank, allows, modules = parse_map(f.read())
    src = os.path.join(root, "src")
    files = sources(src)
    known = set(files)
    problems = []
    backend_users = {}  # index into allows -> files that use the exception
    unit_edges = {}  # unit -> {unit: (file, line, target)}
    for rel in files:
        mine = layer_of(rel, rank)
        if mine is None:
            problems.append(f"src/{rel}: its folder is not in the layer map")
            continue
        with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        for no, line in enumerate(lines, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            target = resolve(rel, m.group(1), known)
            if target is None:
                continue
            theirs = layer_of(target, rank)
            where = f"src/{rel}:{no}"
            if theirs is None:
                problems.append(f"{where}: includes {target}, whose folder is not in the layer map")
                continue
            if target.endswith("_internal.h") and os.path.dirname(target) != os.path.dirname(rel):
                problems.append(
                    f"{where}: includes {target}, private to {os.path.dirname(target)}/"
                )
                continue
            if theirs == mine:
                a, b = unit_of(rel), unit_of(target)
                a, b = modules.get(a, a), modules.get(b, b)
                if a != b:
                    unit_edges.setdefault(a, {}).setdefault(b, (rel, no, target))
                continue
            if rank[theirs] < rank[mine]:
                continue
            allowed = [
                k for k, (fs, ls) in enumerate(allows) if rel in fs and theirs in ls
            ]
            if allowed:
                backend_users.setdefault(allowed[0], set()).add(rel)
                continue
            how = "a peer of" if rank[theirs] == rank[mine] else "above"
            problems.append(
                f"{where}: {mine} includes {target} ({theirs}), "
                f"but {theirs} is {how} {mine} in the layer map"
            )
    for k, users in sorted(backend_users.items()):
        if len(users) > 1:
            problems.append(
                "only one file may include "
                + " or ".join(allows[k][1])
                + ", but "
                + ", ".join(f"src/{u}" for u in sorted(users))
                + " do"
            )
    graph = {a: set(bs) for a, bs in unit_edges.items()}
    for circle in cycles(graph):
        steps = []
        for a, b in zip(circle, circle[1:]):
            rel, no, target = unit_edges[a][b]
            steps.append(f"src/{rel}:{no} includes {target}")
        problems.append(
            "circle in "
            + (os.path.dirname(circle[0]) or "src")
            + ": "
            + " -> ".join(circle)
            + " ("
            + "; ".join(steps)
            + ")"
        )
    return problems


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Check src/'s includes against the layer map.")
    ap.add_argument("--root", default=os.path.dirname(here), help="the tree (holds src/)")
    ap.add_argument("--map", help="the file with the ```layers block (ROOT/docs/architecture.md)")
    args = ap.parse_args(argv)
    map_path = args.map or os.path.join(args.root, "docs", "architecture.md")
    try:
        problems = check(args.root, map_path)
    except (OSError, MapError) as e:
        print(f"check-layers: {map_path}: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
