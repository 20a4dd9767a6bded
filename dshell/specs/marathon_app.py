"""One Marathon app definition (``/v2/apps`` JSON) -> :class:`ServiceSpec`.

Defaults are Marathon's own (``docs/docs/rest-api/public/api/v2/types/app.raml`` and
``healthCheck.raml``): cpus 1, mem 128, one dynamic port, health checks every 60 s with a 300 s
grace period, backoff 1 s x 1.15 up to 3600 s, upgradeStrategy 1/1, or 0.5/0 for apps with
persistent volumes (``docs/persistent-volumes.md``).
"""

from __future__ import annotations

import re

from dshell.specs.common import constraint_dict
from dshell.specs.issues import Spelling
from dshell.specs.model import (
    BackoffSpec,
    Constraint,
    HealthCheckSpec,
    PortSpec,
    ReadinessCheckSpec,
    ResourceSpec,
    UnreachableSpec,
    UpgradeStrategySpec,
    VolumeSpec,
)
from dshell.specs.reader import Reader

_SEGMENT = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
ID_SEGMENT = re.compile(rf"^(?:{_SEGMENT}\.)*{_SEGMENT}$|^\.\.?$")
MESOS_PROTOCOLS = {"MESOS_HTTP": "HTTP", "MESOS_HTTPS": "HTTPS", "MESOS_TCP": "TCP"}
NO_IMAGES = (
    "Docker images need a container runtime, which dshell does not provide: run the"
    " command directly (remove container.docker)"
)

HEALTH_NAMES = {
    "port_index": "portIndex",
    "port_name": "portIndex",
    "grace_period": "gracePeriodSeconds",
    "interval": "intervalSeconds",
    "timeout": "timeoutSeconds",
    "delay": "delaySeconds",
    "max_consecutive_failures": "maxConsecutiveFailures",
}
READY_NAMES = {
    "port_name": "portName",
    "interval": "intervalSeconds",
    "timeout": "timeoutSeconds",
    "http_status_codes_for_ready": "httpStatusCodesForReady",
    "preserve_last_response": "preserveLastResponse",
}
UPGRADE_NAMES = {
    "minimum_health_capacity": "minimumHealthCapacity",
    "maximum_over_capacity": "maximumOverCapacity",
}
UNREACHABLE_NAMES = {
    "inactive_after": "inactiveAfterSeconds",
    "expunge_after": "expungeAfterSeconds",
}
VOLUME_NAMES: dict[str, Spelling] = {
    "container_path": "containerPath",
    "size": ("persistent", "size"),
    "type": ("persistent", "type"),
    "max_size": ("persistent", "maxSize"),
}


def check_id(r: Reader, key: str, value: str) -> None:
    """Marathon path ids: lowercase letters, digits, '-' and '.', segments separated by '/'."""
    for segment in value.strip("/").split("/"):
        if not ID_SEGMENT.match(segment):
            r.issues.error(
                r.at(key),
                f"invalid id {value!r}: each part must be lowercase letters,"
                " digits, '-' or '.', starting and ending with a letter or digit",
            )
            return


def resources(r: Reader) -> ResourceSpec:
    res = ResourceSpec(
        cpus=r.number("cpus", 1.0) or 0.0,
        mem=r.number("mem", 128.0) or 0.0,
        disk=r.number("disk", 0.0) or 0.0,
        gpus=r.number("gpus", 0.0) or 0.0,
    )
    r.issues.note(res, r.path)
    return res


def ports(r: Reader) -> list[PortSpec]:
    """portDefinitions, or the deprecated ports list; Marathon's default is one dynamic port."""
    if r.has("portDefinitions") and r.has("ports"):
        r.issues.error(r.at("ports"), "give portDefinitions or ports, not both")
    out: list[PortSpec] = []
    if r.has("portDefinitions"):
        for p in r.children("portDefinitions"):
            port = PortSpec(
                name=p.text("name"),
                number=p.integer("port", 0) or 0,
                protocol=p.text("protocol", "tcp") or "tcp",
                labels=p.text_map("labels"),
            )
            r.issues.note(port, p.path, {"number": "port"})
            p.finish()
            out.append(port)
        return out
    if r.has("ports"):
        raw = r.raw("ports")
        if not isinstance(raw, list):
            r.issues.error(r.at("ports"), "expected a list of port numbers")
            return []
        for i, n in enumerate(raw):
            if isinstance(n, int) and not isinstance(n, bool):
                port = PortSpec(number=n)
                r.issues.note(port, r.at("ports", i), {"number": ()})
                out.append(port)
            else:
                r.issues.error(r.at("ports", i), "expected a port number")
        return out
    return [PortSpec()]


def health_check(h: Reader) -> HealthCheckSpec:
    protocol = h.text("protocol", "HTTP") or "HTTP"
    command = h.child("command")
    hc = HealthCheckSpec(
        protocol=MESOS_PROTOCOLS.get(protocol, protocol),
        command=command.text("value", required=True) if command else None,
        path=h.text("path"),
        port_index=h.integer("portIndex", None),
        port=h.integer("port", None),
        grace_period=h.number("gracePeriodSeconds", 300.0) or 0.0,
        interval=h.number("intervalSeconds", 60.0) or 0.0,
        timeout=h.number("timeoutSeconds", 20.0) or 0.0,
        delay=h.number("delaySeconds", 15.0) or 0.0,
        max_consecutive_failures=h.integer("maxConsecutiveFailures", 3) or 0,
    )
    h.issues.note(hc, h.path, HEALTH_NAMES)
    h.finish(ignore=("ipProtocol", "ignoreHttp1xx"))
    return hc


def readiness_check(c: Reader) -> ReadinessCheckSpec:
    codes = c.raw("httpStatusCodesForReady", [200])
    if not isinstance(codes, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) and 100 <= x <= 999 for x in codes
    ):
        c.issues.error(c.at("httpStatusCodesForReady"), "expected a list of HTTP status codes")
        codes = [200]
    rc = ReadinessCheckSpec(
        name=c.text("name", "readinessCheck") or "readinessCheck",
        protocol=c.text("protocol", "HTTP") or "HTTP",
        path=c.text("path", "/") or "/",
        port_name=c.text("portName", "http-api") or "http-api",
        interval=c.number("intervalSeconds", 30.0) or 0.0,
        timeout=c.number("timeoutSeconds", 10.0) or 0.0,
        http_status_codes_for_ready=list(codes),
        preserve_last_response=c.flag("preserveLastResponse", False),
    )
    c.issues.note(rc, c.path, READY_NAMES)
    c.finish()
    return rc


def upgrade(r: Reader, resident: bool) -> UpgradeStrategySpec:
    base = (0.5, 0.0) if resident else (1.0, 1.0)
    u = r.child("upgradeStrategy")
    if u is None:
        spec = UpgradeStrategySpec(minimum_health_capacity=base[0], maximum_over_capacity=base[1])
        r.issues.note(spec, r.at("upgradeStrategy"), UPGRADE_NAMES)
        return spec
    spec = UpgradeStrategySpec(
        minimum_health_capacity=u.number("minimumHealthCapacity", base[0]) or 0.0,
        maximum_over_capacity=u.number("maximumOverCapacity", base[1]) or 0.0,
    )
    r.issues.note(spec, u.path, UPGRADE_NAMES)
    u.finish()
    return spec


def backoff(r: Reader) -> BackoffSpec:
    spec = BackoffSpec(
        seconds=r.number("backoffSeconds", 1.0) or 0.0,
        factor=r.number("backoffFactor", 1.15) or 0.0,
        max_launch_delay=r.number("maxLaunchDelaySeconds", 3600.0) or 0.0,
    )
    r.issues.note(
        spec,
        r.path,
        {
            "seconds": "backoffSeconds",
            "factor": "backoffFactor",
            "max_launch_delay": "maxLaunchDelaySeconds",
        },
    )
    return spec


def unreachable(r: Reader, resident: bool) -> UnreachableSpec:
    raw = r.raw("unreachableStrategy")
    if raw == "disabled" or (raw is None and resident):
        return UnreachableSpec(disabled=True)
    if raw is None:
        return UnreachableSpec()
    u = Reader(raw, r.at("unreachableStrategy"), r.issues)
    spec = UnreachableSpec(
        inactive_after=u.number("inactiveAfterSeconds", 300.0) or 0.0,
        expunge_after=u.number("expungeAfterSeconds", 600.0) or 0.0,
    )
    r.issues.note(spec, u.path, UNREACHABLE_NAMES)
    u.finish()
    return spec


def constraints(r: Reader) -> list[Constraint]:
    raw = r.raw("constraints")
    if raw is None:
        return []
    if not isinstance(raw, list):
        r.issues.error(r.at("constraints"), "expected a list of constraints")
        return []
    out = []
    for i, item in enumerate(raw):
        d = constraint_dict(item, r.at("constraints", i), r.issues)
        if d is None:
            continue
        c = Constraint(
            str(d.get("field", "")),
            str(d.get("operator", "")),
            None if d.get("value") is None else str(d["value"]),
        )
        spelt = (
            {"field": 0, "operator": 1, "value": 2}
            if isinstance(item, list)
            else {"field": (), "operator": (), "value": ()}
        )
        r.issues.note(c, r.at("constraints", i), spelt)
        out.append(c)
    return out


def volumes(r: Reader) -> list[VolumeSpec]:
    """container.volumes (persistent only); a Docker image is refused."""
    c = r.child("container")
    if c is None:
        return []
    docker = c.child("docker")
    if (c.text("type", "MESOS") == "DOCKER") or docker is not None:
        r.issues.error(c.at("docker") if docker else c.at("type"), NO_IMAGES)
    out = []
    for v in c.children("volumes"):
        persistent = v.child("persistent")
        if persistent is None:
            v.issues.error(v.path, "only persistent volumes are supported (persistent.size)")
            continue
        vol = VolumeSpec(
            container_path=v.text("containerPath", "", required=True) or "",
            size=persistent.number("size", 0.0, required=True) or 0.0,
            mode=v.text("mode", "RW") or "RW",
            type=persistent.text("type", "root") or "root",
            max_size=persistent.number("maxSize", None),
        )
        r.issues.note(vol, v.path, VOLUME_NAMES)
        persistent.finish(ignore=("constraints", "profileName"))
        v.finish()
        out.append(vol)
    c.finish(ignore=("type",), unsupported={"portMappings": "no container networking"})
    return out
