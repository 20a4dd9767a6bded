"""Helpers shared by the loaders: path-like ids, constraint forms, file-wide checks."""

from __future__ import annotations

from typing import Any

from dshell.specs.issues import Issues, Path, describe
from dshell.specs.model import BatchJobSpec, GroupSpec, LoadedSpec, ServiceSpec
from dshell.specs.validate import find_cycle, validate_job, validate_service


def join_id(base: str, ref: str) -> str:
    """Resolve ``ref`` against the group path ``base`` the way Marathon does (``..`` allowed)."""
    if ref.startswith("/"):
        base = "/"
    absolute = base.startswith("/")
    parts: list[str] = []
    for part in [*base.split("/"), *ref.split("/")]:
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    joined = "/".join(parts)
    return "/" + joined if absolute else joined


def constraint_dict(item: Any, path: Path, issues: Issues) -> dict[str, Any] | None:
    """One constraint in any accepted form as ``{field, operator, value}``.

    Forms: ``["hostname", "UNIQUE"]``, ``["rack", "MAX_PER", "2"]`` (Marathon's array form),
    ``"rack:LIKE:rack-[1-3]"`` (the string form), or a table with those three keys.
    """
    if isinstance(item, dict):
        return item
    if isinstance(item, str):
        parts: list[Any] = item.split(":", 2)
    elif isinstance(item, list):
        parts = item
    else:
        issues.error(
            path,
            f'expected a constraint like ["hostname", "UNIQUE"] or'
            f' "hostname:UNIQUE", got {describe(item)}',
        )
        return None
    if not 2 <= len(parts) <= 3 or not all(
        isinstance(p, str | int) and not isinstance(p, bool) for p in parts
    ):
        issues.error(path, "expected [field, OPERATOR] or [field, OPERATOR, value] (strings)")
        return None
    out = {"field": str(parts[0]), "operator": str(parts[1])}
    if len(parts) == 3:
        out["value"] = str(parts[2])
    return out


def _group_members(groups: list[GroupSpec]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    todo = list(groups)
    while todo:
        group = todo.pop()
        out[group.name] = [s.name for s in group.all_services()]
        todo.extend(group.groups)
    return out


def _dependency_edges(loaded: LoadedSpec, issues: Issues, strict: bool) -> dict[str, set[str]]:
    members = _group_members(loaded.groups)
    services = {s.name: s for s in loaded.all_services()}
    edges: dict[str, set[str]] = {name: set() for name in services}

    def targets(owner: object, field_path: Path, dep: str) -> list[str]:
        if dep in services:
            return [dep]
        if dep in members:
            return members[dep]
        known = ", ".join(sorted([*services, *members])) or "(none)"
        if strict:
            issues.error(field_path, f"unknown dependency {dep!r}; defined here: {known}")
        else:
            issues.warn(
                field_path, f"dependency {dep!r} is not in this file; it must already be deployed"
            )
        return []

    for svc in loaded.all_services():  # every one, even a duplicate id
        for i, dep in enumerate(svc.dependencies):
            edges[svc.name].update(targets(svc, (*issues.path_of(svc, "dependencies"), i), dep))
    todo = list(loaded.groups)
    while todo:
        group = todo.pop()
        todo.extend(group.groups)
        for i, dep in enumerate(group.dependencies):
            found = targets(group, (*issues.path_of(group, "dependencies"), i), dep)
            for name in members[group.name]:
                edges[name].update(found)
    return edges


def check_file(loaded: LoadedSpec, issues: Issues, *, allow_gpus: bool = False) -> None:
    """Single-object rules for everything in the file, then duplicates and dependency cycles."""
    services = loaded.all_services()
    for svc in services:
        validate_service(svc, issues, allow_gpus=allow_gpus)
    for job in loaded.jobs:
        validate_job(job, issues, allow_gpus=allow_gpus)
    seen: dict[str, object] = {}
    todo: list[GroupSpec] = list(loaded.groups)
    named: list[ServiceSpec | GroupSpec | BatchJobSpec] = [*services]
    while todo:
        group = todo.pop(0)
        named.append(group)
        todo.extend(group.groups)
    named.extend(loaded.jobs)
    for obj in named:
        if obj.name in seen:
            issues.error_at(obj, "name", f"duplicate id {obj.name!r}")
        seen[obj.name] = obj
    edges = _dependency_edges(loaded, issues, strict=bool(loaded.groups) or len(services) > 1)
    cycle = find_cycle(edges)
    by_name: dict[str, ServiceSpec] = {}
    for svc in services:
        by_name.setdefault(svc.name, svc)
    if cycle:
        issues.error_at(
            by_name[cycle[0]], "dependencies", "dependency cycle: " + " -> ".join(cycle)
        )
    job_edges = {
        j.name: {p for p in j.after if p in {x.name for x in loaded.jobs}} for j in loaded.jobs
    }
    job_cycle = find_cycle(job_edges)
    if job_cycle:
        first = next(j for j in loaded.jobs if j.name == job_cycle[0])
        issues.error_at(first, "after", "dependency cycle: " + " -> ".join(job_cycle))
