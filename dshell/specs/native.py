"""The native spec format: TOML (or the same schema in JSON or YAML).

A file holds ``[service]`` / ``[[service]]`` tables, ``[group]`` tables (with their own
``service`` and ``group`` entries) and ``[job]`` / ``[[job]]`` tables. Field names are the
model's (:mod:`dshell.specs.model`), documented one by one in ``docs/specs.md``; a few
shorthands are accepted on top:

- ``shell = "cmd args"`` instead of ``command = ["argv", ...]`` + ``shell = true``;
- constraints as ``["hostname", "UNIQUE"]`` or ``"rack:LIKE:rack-[1-3]"``;
- ``ports = ["http", "admin"]`` (names) or ``[8080]`` (numbers);
- ``unreachable_strategy = "disabled"``;
- a job's ``schedule = "*/5 * * * *"`` (or ``"R/2026-01-01T00:00:00Z/PT1H"``).
"""

from __future__ import annotations

from typing import Any

from dshell.specs.common import check_file, constraint_dict, join_id
from dshell.specs.convert import INVALID, convert_struct
from dshell.specs.issues import Issues, Path, describe
from dshell.specs.lines import parse_json, parse_toml, parse_yaml
from dshell.specs.model import BatchJobSpec, GroupSpec, LoadedSpec, ServiceSpec, kind_of

TOP_KEYS = ("service", "group", "job")
_GROUP_KEYS = ("name", "dependencies", "service", "group")
# Marathon's defaults for resident apps (docs/persistent-volumes.md).
_RESIDENT_UPGRADE = {"minimum_health_capacity": 0.5, "maximum_over_capacity": 0.0}


def load(
    text: str, source_name: str, *, syntax: str = "toml", allow_gpus: bool = False, **_opts: Any
) -> LoadedSpec:
    """Load a native spec written in ``syntax`` (toml, json or yaml)."""
    parse = {"toml": parse_toml, "json": parse_json, "yaml": parse_yaml}[syntax]
    data, index = parse(text, source_name)
    issues = Issues(source_name, index, "toml" if syntax == "toml" else "json")
    loaded = LoadedSpec(kind="service", format="native", source=source_name)
    if not isinstance(data, dict):
        issues.error(
            (), f"expected a table with service, group or job entries, got {describe(data)}"
        )
        issues.check()
    for key in data:
        if key not in TOP_KEYS:
            issues.error(
                (str(key),), f"unknown top-level entry {key!r}; expected service, group or job"
            )
    for path, item in _entries(data, "service", issues):
        svc = read_service(item, path, issues)
        if svc is not None:
            loaded.services.append(svc)
    for path, item in _entries(data, "group", issues):
        group = read_group(item, path, issues, parent="")
        if group is not None:
            loaded.groups.append(group)
    for path, item in _entries(data, "job", issues):
        job = read_job(item, path, issues)
        if job is not None:
            loaded.jobs.append(job)
    if not any(k in data for k in TOP_KEYS):
        issues.error((), "no [service], [group] or [job] table found")
    check_file(loaded, issues, allow_gpus=allow_gpus)
    issues.check()
    loaded.kind = kind_of(len(loaded.services), len(loaded.groups), len(loaded.jobs))
    loaded.warnings = issues.warning_texts()
    return loaded


def _entries(data: dict[str, Any], key: str, issues: Issues) -> list[tuple[Path, dict[str, Any]]]:
    """The tables under ``key``: one table, or an array of tables."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, dict):
        return [((key,), value)]
    if isinstance(value, list):
        out: list[tuple[Path, dict[str, Any]]] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append(((key, i), item))
            else:
                issues.error((key, i), f"expected a table, got {describe(item)}")
        return out
    issues.error((key,), f"expected a table or an array of tables, got {describe(value)}")
    return []


def _shell_sugar(d: dict[str, Any], path: Path, issues: Issues) -> None:
    """``shell = "cmd"`` -> ``command = ["cmd"]``, ``shell = true``."""
    if "shell" not in d:
        return
    if not isinstance(d["shell"], str):
        issues.error(
            (*path, "shell"),
            f"expected the shell command line as a string, got {describe(d['shell'])}",
        )
        d.pop("shell")
    elif "command" in d:
        issues.error((*path, "shell"), "give either command (argv) or shell (a string), not both")
        d.pop("shell")
    else:
        d["command"], d["shell"] = [d["shell"]], True


def _common_sugar(raw: dict[str, Any], path: Path, issues: Issues) -> dict[str, Any]:
    d = dict(raw)
    _shell_sugar(d, path, issues)
    if isinstance(d.get("constraints"), list):
        items = [
            constraint_dict(c, (*path, "constraints", i), issues)
            for i, c in enumerate(d["constraints"])
        ]
        d["constraints"] = [c for c in items if c is not None]
    return d


def read_service(raw: dict[str, Any], path: Path, issues: Issues) -> ServiceSpec | None:
    d = _common_sugar(raw, path, issues)
    if isinstance(d.get("ports"), list):
        d["ports"] = [
            {"name": p}
            if isinstance(p, str)
            else {"number": p}
            if isinstance(p, int) and not isinstance(p, bool)
            else p
            for p in d["ports"]
        ]
    if d.get("unreachable_strategy") == "disabled":
        d["unreachable_strategy"] = {"disabled": True}
    if d.get("volumes"):
        d.setdefault("upgrade_strategy", dict(_RESIDENT_UPGRADE))
        d.setdefault("unreachable_strategy", {"disabled": True})
    svc = convert_struct(d, ServiceSpec, path, issues)
    return None if svc is INVALID else svc


def read_job(raw: dict[str, Any], path: Path, issues: Issues) -> BatchJobSpec | None:
    d = _common_sugar(raw, path, issues)
    shorthand = "schedule" in d
    if shorthand:
        expr = d.pop("schedule")
        if not isinstance(expr, str):
            issues.error(
                (*path, "schedule"),
                f"expected a cron expression or an ISO 8601 interval, got {describe(expr)}",
            )
        elif "schedules" in d:
            issues.error((*path, "schedule"), "give either schedule or schedules, not both")
        else:
            d["schedules"] = [{"iso8601": expr} if expr.startswith("R") else {"cron": expr}]
    job = convert_struct(d, BatchJobSpec, path, issues)
    if job is INVALID:
        return None
    if shorthand and job.schedules:  # errors in it are the `schedule` line's, not a table's
        issues.note(job.schedules[0], path, {"cron": "schedule", "iso8601": "schedule"})
    return job


def read_group(raw: dict[str, Any], path: Path, issues: Issues, parent: str) -> GroupSpec | None:
    """A group: its services and nested groups get ids relative to the group's path."""
    for key in raw:
        if key not in _GROUP_KEYS:
            issues.error(
                (*path, str(key)),
                f"unknown field {key!r} in a group; expected one of " + ", ".join(_GROUP_KEYS),
            )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        issues.error((*path, "name"), f"a group needs a name (a string), got {describe(name)}")
        return None
    full = join_id(parent, name) if parent else name.rstrip("/") or "/"
    deps = raw.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        issues.error((*path, "dependencies"), "expected a list of ids")
        deps = []
    group = GroupSpec(name=full, dependencies=[join_id(parent or "", d) for d in deps])
    issues.note(group, path)
    for sub, item in _entries(raw, "service", issues):
        svc = read_service(item, (*path, *sub), issues)
        if svc is not None:
            svc.name = join_id(full, svc.name)
            svc.dependencies = [join_id(full, d) for d in svc.dependencies]
            group.services.append(svc)
    for sub, item in _entries(raw, "group", issues):
        child = read_group(item, (*path, *sub), issues, parent=full)
        if child is not None:
            group.groups.append(child)
    return group
