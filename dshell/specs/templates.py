"""Render the Aurora-style templates kept in normalized specs, at launch time.

``{{thermos.ports[NAME]}}``, ``{{mesos.instance}}``, ``{{mesos.hostname}}`` and
``{{thermos.task_id}}`` stay verbatim in a loaded spec (only the engine knows their values);
the engine renders each command with :func:`render_templates` just before it spawns the task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dshell.errors import UsageError
from dshell.specs.model import ServiceSpec

TEMPLATE = re.compile(
    r"\{\{\s*(thermos\.ports\[\s*([^\]\s]+)\s*\]|mesos\.instance|mesos\.hostname"
    r"|thermos\.task_id)\s*\}\}"
)


def render_templates(
    text: str, ports: Mapping[str, int], instance: int, hostname: str, task_id: str
) -> str:
    """``text`` with every runtime template replaced; an unknown port name is a UsageError.

    >>> render_templates("serve {{thermos.ports[http]}} #{{mesos.instance}}", {"http": 31000},
    ...                  2, "node1", "t-1")
    'serve 31000 #2'
    """

    def value(m: re.Match[str]) -> str:
        if m.group(2) is not None:
            if m.group(2) not in ports:
                known = ", ".join(sorted(ports)) or "none"
                raise UsageError(f"template {m.group(0)} names an unknown port (known: {known})")
            return str(ports[m.group(2)])
        return {
            "mesos.instance": str(instance),
            "mesos.hostname": hostname,
            "thermos.task_id": task_id,
        }[m.group(1)]

    return TEMPLATE.sub(value, text)


def port_names(spec: ServiceSpec, allocated: Mapping[str, int]) -> dict[str, int]:
    """The allocated ports plus the Announcer's aliases and static numbers (``portmap``)."""
    out = dict(allocated)
    portmap = spec.announce.portmap if spec.announce else {}
    for name in portmap:
        target, hops = name, 0
        while target in portmap and hops < 16:
            target, hops = portmap[target], hops + 1
        if target.isdigit():
            out[name] = int(target)
        elif target in out:
            out[name] = out[target]
    return out
