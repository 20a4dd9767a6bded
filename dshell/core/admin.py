"""Operator verbs as functions: drain a node, return it to service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backend import Capability, require
from ..errors import UsageError
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


def drain(session: Session, ref: str, *, on: str | None = None, **params: Any) -> Any:
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.DRAIN, "drain")
    agent = backend.admin_call("drain", node=node, **params)
    if hasattr(agent, "mount"):
        agent.mount = mount.target
    return agent


def undrain(session: Session, ref: str, *, on: str | None = None) -> Any:
    mount, backend, node = locate_node(session, ref, on)
    require(backend, Capability.DRAIN, "nodes up")
    agent = backend.admin_call("undrain", node=node)
    if hasattr(agent, "mount"):
        agent.mount = mount.target
    return agent
