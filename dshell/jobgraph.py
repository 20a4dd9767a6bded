"""The dependency graph of batch jobs (Chronos parents): cycles, and text and DOT renderings.

Pure functions over ``{job: [parents]}``; the engine refuses a cycle with :func:`find_cycle`
and ``job graph`` prints :func:`as_text` or :func:`as_dot` (Chronos' ``/graph/dot``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(parents: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a path in the direction work flows (``[a, b, c, a]``: a runs before b, b
    before c, c before a), or None. Parents missing from the mapping are leaves."""
    children: dict[str, list[str]] = {name: [] for name in parents}
    for name, ups in parents.items():
        for parent in ups:
            children.setdefault(parent, []).append(name)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(children):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(sorted(children[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(children.get(nxt, ()))))
    return None


def cycle_text(cycle: Sequence[str]) -> str:
    return " -> ".join(cycle)


def _levels(parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Depth of each job: 0 without parents, else one more than its deepest parent."""
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        ups = [p for p in parents.get(name, ()) if p not in seen]
        value = 1 + max((level(p, seen | {name}) for p in ups), default=-1)
        depth[name] = value
        return value

    for name in parents:
        level(name, frozenset())
    return depth


def as_text(parents: Mapping[str, Sequence[str]]) -> str:
    """A tree per root job, children indented below their parents (a job with several
    parents appears under each, marked ``(also after …)``)."""
    children: dict[str, list[str]] = {name: [] for name in parents}
    for name, ups in parents.items():
        for parent in ups:
            children.setdefault(parent, []).append(name)
    lines: list[str] = []

    def walk(name: str, prefix: str, last: bool, top: bool, seen: frozenset[str]) -> None:
        others = [p for p in parents.get(name, ()) if not top]
        note = ""
        if len(others) > 1:
            note = "  (after " + ", ".join(sorted(others)) + ")"
        branch = "" if top else ("`-- " if last else "|-- ")
        lines.append(f"{prefix}{branch}{name}{note}")
        if name in seen:
            return
        kids = sorted(children.get(name, ()))
        inner = prefix if top else prefix + ("    " if last else "|   ")
        for i, kid in enumerate(kids):
            walk(kid, inner, i == len(kids) - 1, False, seen | {name})

    roots = sorted(n for n in children if not parents.get(n))
    for root in roots:
        walk(root, "", True, True, frozenset())
    return "\n".join(lines) + ("\n" if lines else "")


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_id(name: str) -> str:
    return f'"{_esc(name)}"'


def as_dot(parents: Mapping[str, Sequence[str]], states: Mapping[str, str] | None = None) -> str:
    """Graphviz DOT: one node per job (labelled with its state when given), one edge per
    parent -> child."""
    lines = ["digraph jobs {", "  rankdir=LR;", "  node [shape=box];"]
    names = sorted(set(parents) | {p for ups in parents.values() for p in ups})
    for name in names:
        state = (states or {}).get(name)
        label = f' [label="{_esc(name)}\\n{_esc(state)}"]' if state else ""
        lines.append(f"  {_dot_id(name)}{label};")
    for name in sorted(parents):
        for parent in sorted(parents[name]):
            lines.append(f"  {_dot_id(parent)} -> {_dot_id(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def depth_of(parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each job's depth in the graph (0: no parents); cycles are broken arbitrarily."""
    return _levels(parents)
