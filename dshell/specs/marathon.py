"""Marathon app and group JSON -> the normalized model.

An app (``{"id", "cmd"|"args", ...}``) becomes a ServiceSpec; a group (``{"id", "apps",
"groups", "dependencies"}``) a GroupSpec whose ids are resolved to absolute paths the way
Marathon does (relative to the enclosing group, ``..`` allowed). Unknown fields are warnings
naming their JSON path; fields this machine cannot honour (a Docker image, GPUs, secrets, pods)
are errors.

What Marathon cannot express (Aurora processes, lifecycle, announcer, ...) travels in the label
``dshell.extra`` (a JSON object of native fields) written by
:func:`dshell.specs.export.to_marathon`, so a spec survives a trip through Marathon JSON unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from dshell.specs import marathon_app as app
from dshell.specs.common import check_file, join_id
from dshell.specs.convert import INVALID, convert_struct
from dshell.specs.issues import Issues, Spelling, describe
from dshell.specs.lines import parse_json, parse_yaml
from dshell.specs.model import GroupSpec, LoadedSpec, ServiceSpec, kind_of
from dshell.specs.reader import Reader

EXTRA_LABEL = "dshell.extra"
SERVICE_NAMES: dict[str, Spelling] = {
    "name": "id",
    "command": "cmd",
    "kill_grace_period": "taskKillGracePeriodSeconds",
    "kill_selection": "killSelection",
    "ports": "portDefinitions",
    "health_checks": "healthChecks",
    "readiness_checks": "readinessChecks",
    "require_ports": "requirePorts",
    "volumes": ("container", "volumes"),
}
# Read-only AppInfo fields and fields with no effect here: accepted silently.
_IGNORED = (
    "version",
    "versionInfo",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "deployments",
    "readinessCheckResults",
    "tasks",
    "lastTaskFailure",
    "taskStats",
    "tasksStats",
    "residency",
    "executor",
    "ipAddress",
    "networks",
)
_UNSUPPORTED = {
    "fetch": "dshell does not download artifacts; the files will not be fetched",
    "uris": "dshell does not download artifacts; the files will not be fetched",
    "storeUrls": "dshell does not download artifacts",
    "acceptedResourceRoles": "resource roles are not used",
    "user": "tasks run as the user of the engine",
    "check": "Mesos checks are not supported; use healthChecks",
    "tty": "tasks get no terminal",
    "resourceLimits": "limits equal the requested resources",
    "executorResources": "there is no custom executor",
}
_ERRORS = {"secrets": "secrets are not supported", "pods": "pods are not supported"}


def load(
    text: str, source_name: str, *, syntax: str = "json", allow_gpus: bool = False, **_opts: Any
) -> LoadedSpec:
    """Load a Marathon app or group definition (JSON, or the same in YAML)."""
    data, index = (parse_yaml if syntax == "yaml" else parse_json)(text, source_name)
    issues = Issues(source_name, index, "json")
    loaded = LoadedSpec(kind="service", format="marathon", source=source_name)
    root = Reader(data, (), issues)
    if isinstance(data, dict) and ("apps" in data or "groups" in data):
        loaded.groups.append(read_group(root, "", top=True))
    elif isinstance(data, dict) and "id" in data:
        svc = read_app(root, "/")
        if svc is not None:
            loaded.services.append(svc)
    elif isinstance(data, dict):
        issues.error((), "expected a Marathon app (id, cmd) or group (id, apps, groups)")
    check_file(loaded, issues, allow_gpus=allow_gpus)
    issues.check()
    loaded.kind = kind_of(len(loaded.services), len(loaded.groups), 0)
    loaded.warnings = issues.warning_texts()
    return loaded


def _env(r: Reader) -> dict[str, str]:
    raw = r.raw("env")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        r.issues.error(r.at("env"), "expected an object of strings")
        return {}
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str):  # YAML keys may be numbers, booleans or null
            r.issues.error(r.at("env", str(key)), f"expected a string key, got {describe(key)}")
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, dict) and "secret" in value:
            r.issues.error(r.at("env", key), "secrets are not supported")
        else:
            r.issues.error(r.at("env", key), "expected a string")
    return out


def _command(r: Reader) -> tuple[list[str], bool]:
    cmd, args = r.text("cmd"), r.texts("args")
    if cmd is not None and args:
        r.issues.error(r.at("args"), "give cmd or args, not both")
    if cmd is not None:
        return [cmd], True
    if not args:
        r.issues.error(r.at("cmd"), "an app needs cmd (a shell command) or args (argv)")
    return args, False


def read_app(r: Reader, group: str) -> ServiceSpec | None:
    """One app; ``group`` is the id of the enclosing group ('/' at the top)."""
    ident = r.text("id", "", required=True) or ""
    app.check_id(r, "id", ident)
    command, shell = _command(r)
    res = app.resources(r)
    vols = app.volumes(r)
    labels = r.text_map("labels")
    extra = labels.pop(EXTRA_LABEL, None)
    svc = ServiceSpec(
        name=join_id(group, ident),
        command=command,
        shell=shell,
        resources=res,
        instances=r.integer("instances", 1) or 0,
        env=_env(r),
        labels=labels,
        role=r.text("role"),
        ports=app.ports(r),
        require_ports=r.flag("requirePorts", False),
        health_checks=[app.health_check(h) for h in r.children("healthChecks")],
        readiness_checks=[app.readiness_check(c) for c in r.children("readinessChecks")],
        upgrade_strategy=app.upgrade(r, bool(vols)),
        backoff=app.backoff(r),
        kill_grace_period=r.number("taskKillGracePeriodSeconds", None),
        kill_selection=r.text("killSelection", "YOUNGEST_FIRST") or "YOUNGEST_FIRST",
        unreachable_strategy=app.unreachable(r, bool(vols)),
        constraints=app.constraints(r),
        volumes=vols,
        dependencies=[join_id(group, d) for d in r.texts("dependencies")],
    )
    r.issues.note(svc, r.path, SERVICE_NAMES)
    r.finish(ignore=_IGNORED, unsupported=_UNSUPPORTED, errors=_ERRORS)
    if extra is not None:
        return _with_extra(svc, extra, r)
    return svc


def _merge(base: Any, extra: Any) -> Any:
    """Deep-merge: tables key by key, equal-length lists of tables item by item."""
    if isinstance(base, dict) and isinstance(extra, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in extra.items()}}
    if (
        isinstance(base, list)
        and isinstance(extra, list)
        and len(base) == len(extra)
        and all(isinstance(x, dict) for x in [*base, *extra])
    ):
        return [_merge(b, e) for b, e in zip(base, extra, strict=True)]
    return extra


def _with_extra(svc: ServiceSpec, text: str, r: Reader) -> ServiceSpec:
    path = r.at("labels", EXTRA_LABEL)
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as e:
        r.issues.error(path, f"expected a JSON object of dshell fields: {e.msg}")
        return svc
    except (ValueError, RecursionError) as e:  # a number too long, nesting too deep
        why = "nested too deeply" if isinstance(e, RecursionError) else "a number is too long"
        r.issues.error(path, f"expected a JSON object of dshell fields: {why}")
        return svc
    if not isinstance(extra, dict):
        r.issues.error(path, "expected a JSON object of dshell fields")
        return svc
    merged = convert_struct(_merge(msgspec.to_builtins(svc), extra), ServiceSpec, path, r.issues)
    if merged is INVALID:
        return svc
    r.issues.note(merged, r.path, SERVICE_NAMES)
    return merged


def read_group(r: Reader, parent: str, *, top: bool = False) -> GroupSpec:
    """A group and everything under it, with absolute ids."""
    ident = r.text("id", "/" if top else None, required=not top) or "/"
    if ident != "/":
        app.check_id(r, "id", ident)
    full = join_id(parent or "/", ident)
    group = GroupSpec(
        name=full, dependencies=[join_id(join_id(full, ".."), d) for d in r.texts("dependencies")]
    )
    r.issues.note(group, r.path, {"name": "id"})
    for a in r.children("apps"):
        svc = read_app(a, full)
        if svc is not None:
            group.services.append(svc)
    group.groups = [read_group(g, full) for g in r.children("groups")]
    r.finish(ignore=("version", "enforceRole", "scaleBy"), errors=_ERRORS)
    return group
