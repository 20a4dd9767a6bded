"""Operator verbs as functions: drain a node (and wait for it), return it to service, change
its attributes, schedule maintenance windows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backend import Capability, require
from ..errors import NotFoundError, TimeoutExpired, UsageError
from ..namespace import resolve
from .launch import launch_mount

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..session import Session


def locate_node(session: Session, ref: str, on: str | None = None) -> tuple[Mount, Backend, str]:
    """A node by id in the current mount (or --on PATH), or by path /MOUNT/agents/ID."""
    if "/" in ref:
        res = resolve(session.mounts(), session.abspath(ref))
        parts = res.parts
        if res.mount is None or len(parts) != 2 or parts[0] != "agents":
            raise UsageError(f"{ref}: not a node path (expected /MOUNT/agents/ID)")
        mount, node = res.mount, parts[1]
    else:
        mount, node = launch_mount(session, on), ref
    return mount, session.backend(mount), node


def _mounted(agent: Any, mount: Mount) -> Any:
    if hasattr(agent, "mount"):
        agent.mount = mount.target
    return agent


def drain(
    session: Session,
    ref: str,
    *,
    on: str | None = None,
    grace: float | None = None,
    **params: Any,
) -> Any:
    """Drain a node (``grace``: the longest SIGTERM→SIGKILL wait of the tasks killed)."""
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.DRAIN, "drain")
    if grace is not None:
        params["grace"] = grace
    return _mounted(backend.admin_call("drain", node=node, **params), mount)


def wait_drained(
    session: Session,
    ref: str,
    *,
    on: str | None = None,
    timeout: float | None = None,
    progress: Callable[[Any], None] | None = None,
    poll: float = 0.5,
) -> Any:
    """Poll the node until it is DRAINED (TimeoutExpired after ``timeout``: the drain goes on).
    ``progress`` is called with the node whenever what it reports changes."""
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.AGENTS, "drain --wait")
    deadline = None if timeout is None else time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        agent = next((a for a in backend.list_agents() if a.id == node), None)
        if agent is None:
            raise NotFoundError(f"no node {node!r} on {mount.target}")
        _mounted(agent, mount)
        if agent.state in ("DRAINED", "DOWN"):
            return agent
        if agent.state == "UP":
            raise UsageError(f"{mount.target}/agents/{node} is UP again: the drain was cancelled")
        seen = (agent.state, agent.tasks, agent.reason)
        if progress is not None and seen != last:
            progress(agent)
        last = seen
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutExpired(
                f"{mount.target}/agents/{node} still {agent.state} after {timeout:g}s "
                f"({agent.tasks} task(s) left{'; ' + agent.reason if agent.reason else ''}); "
                "the drain goes on"
            )
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))


def set_attributes(
    session: Session,
    ref: str,
    to_set: dict[str, str],
    to_unset: list[str],
    *,
    on: str | None = None,
) -> Any:
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.ATTRIBUTES, "nodes attr")
    agent = backend.admin_call("attributes", node=node, set=to_set, unset=to_unset)
    return _mounted(agent, mount)


def maint_list(session: Session, on: str | None = None) -> list[Any]:
    mount = launch_mount(session, on)
    backend = session.backend(mount)
    require(backend, Capability.MAINTENANCE, "maint ls")
    return [_mounted(w, mount) for w in backend.admin_call("maint_ls")]


def maint_schedule(
    session: Session,
    ref: str,
    *,
    start: float | None,
    start_in: float | None,
    duration: float,
    on: str | None = None,
) -> Any:
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.MAINTENANCE, "maint schedule")
    window = backend.admin_call(
        "maint_schedule", node=node, start=start, start_in=start_in, duration=duration
    )
    return _mounted(window, mount)


def maint_cancel(session: Session, ref: str, *, every: bool, on: str | None = None) -> list[Any]:
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.MAINTENANCE, "maint cancel")
    return [_mounted(w, mount) for w in backend.admin_call("maint_cancel", node=node, all=every)]


def undrain(session: Session, ref: str, *, on: str | None = None) -> Any:
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.DRAIN, "nodes up")
    return _mounted(backend.admin_call("undrain", node=node), mount)


def quota_list(session: Session, on: str | None = None) -> list[Any]:
    mount = launch_mount(session, on)
    backend = session.backend(mount)
    require(backend, Capability.QUOTA, "quota ls")
    return [_mounted(q, mount) for q in backend.admin_call("quota_ls")]


def quota_set(session: Session, role: str, sizes: dict[str, float], on: str | None = None) -> Any:
    """Set quota limits (cpus, mem, disk: MiB) and/or the weight of ``role``."""
    mount = launch_mount(session, on)
    backend = session.backend(mount)
    require(backend, Capability.QUOTA, "quota set")
    return _mounted(backend.admin_call("quota_set", role=role, **sizes), mount)


def quota_rm(session: Session, role: str, on: str | None = None) -> Any:
    mount = launch_mount(session, on)
    backend = session.backend(mount)
    require(backend, Capability.QUOTA, "quota rm")
    return _mounted(backend.admin_call("quota_rm", role=role), mount)


def reserve(
    session: Session,
    ref: str,
    role: str,
    sizes: dict[str, float],
    *,
    unreserve: bool = False,
    on: str | None = None,
) -> Any:
    """Reserve (or give back) part of a node for one role (Mesos dynamic reservations)."""
    verb = "unreserve" if unreserve else "reserve"
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.RESERVATIONS, verb)
    return _mounted(backend.admin_call(verb, node=node, role=role, **sizes), mount)


def parse_sizes(
    items: tuple[str, ...] | list[str], verb: str, keys: tuple[str, ...]
) -> dict[str, float]:
    """``cpus=2 mem=512`` → sizes (a usage error for unknown keys, non-numbers, negatives)."""
    import math

    sizes: dict[str, float] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in keys:
            raise UsageError(f"{verb}: expected {'|'.join(keys)}=NUMBER, got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{verb}: {key} must be a number, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise UsageError(f"{verb}: {key} must be a number >= 0, got {value!r}")
        if key == "weight" and number <= 0:
            raise UsageError(f"{verb}: weight must be > 0, got {value!r}")
        sizes[key] = number
    return sizes
