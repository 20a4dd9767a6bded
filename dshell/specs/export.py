"""Export normalized specs: to the native format (TOML-ready data) and to Marathon JSON.

:func:`to_native` is lossless: loading the TOML that :func:`dump_toml` writes gives the same
spec. :func:`to_marathon` writes everything Marathon has a field for; the rest (Aurora
processes, lifecycle, announcer, environment, ...) goes into the label ``dshell.extra`` as a JSON
object of native fields, which :mod:`dshell.specs.marathon` reads back, so Aurora -> Marathon ->
dshell gives the same spec again (only the id changes, to a valid Marathon id).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from dshell.specs import tomlw
from dshell.specs.marathon import EXTRA_LABEL
from dshell.specs.model import (
    BatchJobSpec,
    Constraint,
    GroupSpec,
    HealthCheckSpec,
    LoadedSpec,
    ServiceSpec,
)

Spec = ServiceSpec | GroupSpec | BatchJobSpec


def full_dict(obj: Any) -> Any:
    """Plain data with every field of every Struct, defaults included (for golden files)."""
    if isinstance(obj, msgspec.Struct):
        return {f.encode_name: full_dict(getattr(obj, f.name)) for f in msgspec.structs.fields(obj)}
    if isinstance(obj, list | tuple):
        return [full_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: full_dict(v) for k, v in obj.items()}
    return obj


def _compact(obj: Any, *, top: bool = True) -> Any:
    """Plain data for export: a top-level spec without the fields left at their defaults,
    nested objects in full (easier to read and edit); None is left out (TOML has no null)."""
    if isinstance(obj, Constraint):
        return [obj.field, obj.operator] + ([obj.value] if obj.value is not None else [])
    if isinstance(obj, msgspec.Struct):
        out = {}
        for f in msgspec.structs.fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                continue
            if top and not f.required:
                default = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
                if value == default:
                    continue
            out[f.encode_name] = _compact(value, top=False)
        return out
    if isinstance(obj, list | tuple):
        return [_compact(v, top=False) for v in obj]
    if isinstance(obj, dict):
        return {k: _compact(v, top=False) for k, v in obj.items()}
    return obj


def _native_entry(spec: ServiceSpec | BatchJobSpec) -> dict[str, Any]:
    out = _compact(spec)
    if spec.shell and len(spec.command) == 1:
        out.pop("command", None)
        out["shell"] = spec.command[0]
    else:
        out.pop("shell", None)
    return dict(out)


def _native_group(group: GroupSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": group.name}
    if group.dependencies:
        out["dependencies"] = list(group.dependencies)
    if group.services:
        out["service"] = [_native_entry(s) for s in group.services]
    if group.groups:
        out["group"] = [_native_group(g) for g in group.groups]
    return out


def to_native(spec: Spec | LoadedSpec) -> dict[str, Any]:
    """The native-format document (plain data) for one spec or a whole loaded file."""
    if isinstance(spec, ServiceSpec):
        return {"service": _native_entry(spec)}
    if isinstance(spec, BatchJobSpec):
        return {"job": _native_entry(spec)}
    if isinstance(spec, GroupSpec):
        return {"group": _native_group(spec)}
    out: dict[str, Any] = {}
    if spec.services:
        out["service"] = [_native_entry(s) for s in spec.services]
    if spec.groups:
        out["group"] = [_native_group(g) for g in spec.groups]
    if spec.jobs:
        out["job"] = [_native_entry(j) for j in spec.jobs]
    return out


def dump_toml(spec: Spec | LoadedSpec) -> str:
    """The native TOML text of ``spec``."""
    return tomlw.dumps(to_native(spec))


# ---- Marathon ----------------------------------------------------------------------------------

# ServiceSpec fields Marathon has no place for: they travel in the dshell.extra label.
_EXTRA_FIELDS = (
    "processes",
    "process_order",
    "task_name",
    "max_process_failures",
    "max_concurrency",
    "environment",
    "cluster",
    "lifecycle",
    "announce",
    "tier",
    "priority",
    "update_config",
    "version",
)


def marathon_id(name: str) -> str:
    """A valid absolute Marathon id for ``name`` (lowercase, '-' for other characters)."""
    parts = []
    for part in name.strip("/").split("/"):
        clean = re.sub(r"[^a-z0-9.-]+", "-", part.lower()).strip("-.")
        parts.append(clean or "x")
    return "/" + "/".join(parts)


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _health(hc: HealthCheckSpec, svc: ServiceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": hc.protocol}
    if hc.command is not None:
        out["command"] = {"value": hc.command}
    if hc.path is not None:
        out["path"] = hc.path
    names = [p.name for p in svc.ports]
    if hc.port_name is not None and hc.port_name in names:
        out["portIndex"] = names.index(hc.port_name)
    elif hc.port_index is not None:
        out["portIndex"] = hc.port_index
    if hc.port is not None:
        out["port"] = hc.port
    out.update(
        gracePeriodSeconds=_num(hc.grace_period),
        intervalSeconds=_num(hc.interval),
        timeoutSeconds=_num(hc.timeout),
        delaySeconds=_num(hc.delay),
        maxConsecutiveFailures=hc.max_consecutive_failures,
    )
    return out


def _extra(svc: ServiceSpec) -> dict[str, Any]:
    base = ServiceSpec(name=svc.name)
    extra = {
        f: _compact(getattr(svc, f), top=False)
        for f in _EXTRA_FIELDS
        if getattr(svc, f) != getattr(base, f)
    }
    if svc.processes and not svc.command:
        extra.update(command=[], shell=False)
    checks = [
        {
            k: v
            for k, v in (
                ("expected_response", h.expected_response),
                ("expected_status", h.expected_status),
            )
            if v is not None
        }
        for h in svc.health_checks
    ]
    if any(checks):
        extra["health_checks"] = checks
    if any(v.name for v in svc.volumes):
        extra["volumes"] = [{"name": v.name} if v.name else {} for v in svc.volumes]
    return extra


def _command(svc: ServiceSpec) -> dict[str, Any]:
    if svc.shell and len(svc.command) == 1:
        return {"cmd": svc.command[0]}
    if svc.command:
        return {"args": list(svc.command)}
    # Several processes: Marathon runs one command; dshell.extra keeps the real processes.
    return {"cmd": " && ".join(p.cmdline for p in svc.processes if not p.final) or "true"}


def _ports_and_checks(svc: ServiceSpec) -> dict[str, Any]:
    ports = [
        {
            "port": p.number,
            "protocol": p.protocol,
            **({"name": p.name} if p.name else {}),
            **({"labels": dict(p.labels)} if p.labels else {}),
        }
        for p in svc.ports
    ]
    ready = [
        {
            "name": r.name,
            "protocol": r.protocol,
            "path": r.path,
            "portName": r.port_name,
            "intervalSeconds": _num(r.interval),
            "timeoutSeconds": _num(r.timeout),
            "httpStatusCodesForReady": list(r.http_status_codes_for_ready),
            "preserveLastResponse": r.preserve_last_response,
        }
        for r in svc.readiness_checks
    ]
    return {
        "portDefinitions": ports,
        "requirePorts": svc.require_ports,
        "healthChecks": [_health(h, svc) for h in svc.health_checks],
        "readinessChecks": ready,
    }


def _policies(svc: ServiceSpec) -> dict[str, Any]:
    up, back, un = svc.upgrade_strategy, svc.backoff, svc.unreachable_strategy
    out: dict[str, Any] = {
        "upgradeStrategy": {
            "minimumHealthCapacity": up.minimum_health_capacity,
            "maximumOverCapacity": up.maximum_over_capacity,
        },
        "backoffSeconds": _num(back.seconds),
        "backoffFactor": back.factor,
        "maxLaunchDelaySeconds": _num(back.max_launch_delay),
        "killSelection": svc.kill_selection,
        "unreachableStrategy": "disabled"
        if un.disabled
        else {
            "inactiveAfterSeconds": _num(un.inactive_after),
            "expungeAfterSeconds": _num(un.expunge_after),
        },
    }
    if svc.kill_grace_period is not None:
        out["taskKillGracePeriodSeconds"] = _num(svc.kill_grace_period)
    return out


def _volumes(svc: ServiceSpec) -> list[dict[str, Any]]:
    return [
        {
            "containerPath": v.container_path,
            "mode": v.mode,
            "persistent": {
                "type": v.type,
                "size": _num(v.size),
                **({"maxSize": _num(v.max_size)} if v.max_size else {}),
            },
        }
        for v in svc.volumes
    ]


def _app(svc: ServiceSpec) -> dict[str, Any]:
    res = svc.resources
    app: dict[str, Any] = {
        "id": marathon_id(svc.name),
        **_command(svc),
        "cpus": _num(res.cpus),
        "mem": _num(res.mem),
        "disk": _num(res.disk),
        "gpus": _num(res.gpus),
        "instances": svc.instances,
    }
    if svc.env:
        app["env"] = dict(svc.env)
    labels = dict(svc.labels)
    extra = _extra(svc)
    if extra:
        labels[EXTRA_LABEL] = json.dumps(extra, sort_keys=True, separators=(",", ":"))
    if labels:
        app["labels"] = labels
    if svc.role is not None:
        app["role"] = svc.role
    app.update(_ports_and_checks(svc))
    app["constraints"] = [_compact(c) for c in svc.constraints]
    app.update(_policies(svc))
    if svc.volumes:
        app["container"] = {"type": "MESOS", "volumes": _volumes(svc)}
    if svc.dependencies:
        app["dependencies"] = [marathon_id(d) for d in svc.dependencies]
    return app


def to_marathon(spec: ServiceSpec | GroupSpec) -> dict[str, Any]:
    """A Marathon app (for a service) or group (for a group) definition."""
    if isinstance(spec, ServiceSpec):
        return _app(spec)
    out: dict[str, Any] = {"id": marathon_id(spec.name), "apps": [_app(s) for s in spec.services]}
    if spec.groups:
        out["groups"] = [to_marathon(g) for g in spec.groups]
    if spec.dependencies:
        out["dependencies"] = [marathon_id(d) for d in spec.dependencies]
    return out
