"""Aurora / Finagle serverset members: the znode layout and the JSON they hold.

A serverset is a znode whose children are the live instances of a job, each an *ephemeral
sequential* node named ``member_NNNNNNNNNN`` holding one ``ServiceInstance`` as JSON (the
shape of Aurora's ``JsonCodec`` and twitter commons' ``ServerSet``)::

    {"serviceEndpoint": {"host": "h", "port": 31001},
     "additionalEndpoints": {"http": {"host": "h", "port": 31001}, "admin": {…}},
     "status": "ALIVE",
     "shard": 0}

Aurora announces under ``<root>/<role>/<environment>/<job>``.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from typing import Any, NamedTuple

from .url import check_name, check_path

MEMBER_PREFIX = "member_"
STATUS_ALIVE = "ALIVE"


def serverset_path(
    base: str, role: str, environment: str, name: str, zk_path: str | None = None
) -> str:
    """Aurora's ``<base>/<role>/<environment>/<name>``, or ``zk_path`` (absolute) instead."""
    if zk_path:
        path = check_path(zk_path, "zk_path")
        if path == "/":
            raise ValueError("zk_path must not be the root znode")
        return path
    parts = (check_name(role, "role"), check_name(environment, "environment"))
    return posixpath.join(base, *parts, check_name(name, "name"))


def member_data(
    host: str, port: int, endpoints: Mapping[str, int], shard: int | None = None
) -> bytes:
    """The JSON of one member: ``port`` is the primary endpoint, ``endpoints`` the named ones.

    ValueError for an empty host, a negative shard or a port outside 0-65535.
    """
    if not host:
        raise ValueError("host must not be empty")
    if shard is not None and (not isinstance(shard, int) or shard < 0):
        raise ValueError(f"shard must be an integer >= 0, not {shard!r}")
    for label, number in [("primary", port), *endpoints.items()]:
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 65536:
            raise ValueError(f"endpoint {label!r}: bad port {number!r}")
    doc: dict[str, Any] = {
        "serviceEndpoint": {"host": host, "port": port},
        "additionalEndpoints": {
            name: {"host": host, "port": p} for name, p in sorted(endpoints.items())
        },
        "status": STATUS_ALIVE,
    }
    if shard is not None:
        doc["shard"] = shard
    return json.dumps(doc, separators=(",", ":")).encode()


class Member(NamedTuple):
    """A decoded member (what ``ls`` shows of it)."""

    host: str
    port: int
    status: str
    shard: int | None
    endpoints: dict[str, tuple[str, int]]

    def summary(self) -> str:
        shard = f" shard={self.shard}" if self.shard is not None else ""
        names = ",".join(sorted(self.endpoints))
        return f"{self.host}:{self.port}{shard} {self.status}" + (f" {names}" if names else "")


def _endpoint(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, dict):
        return None
    host, port = value.get("host"), value.get("port")
    if isinstance(host, str) and isinstance(port, int) and not isinstance(port, bool):
        return host, port
    return None


def decode_member(data: bytes) -> Member | None:
    """The member in a znode's data, or None when it is not serverset JSON."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    primary = _endpoint(doc.get("serviceEndpoint"))
    if primary is None:
        return None
    extra = doc.get("additionalEndpoints")
    endpoints = {}
    if isinstance(extra, dict):
        for name, value in extra.items():
            ep = _endpoint(value)
            if ep is not None:
                endpoints[str(name)] = ep
    shard = doc.get("shard")
    status = doc.get("status")
    return Member(
        host=primary[0],
        port=primary[1],
        status=status if isinstance(status, str) else "?",
        shard=shard if isinstance(shard, int) and not isinstance(shard, bool) else None,
        endpoints=endpoints,
    )
