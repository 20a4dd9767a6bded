"""ZooKeeper addresses and credentials, parsed without importing kazoo.

A target is ``zk://HOST[:PORT][,HOST[:PORT]…][/PATH]``: the ensemble (kazoo's ``hosts``
string, the port defaulting to 2181) and a base znode path (``/`` when the URL has none).
Credentials for ZooKeeper's ``digest`` scheme are ``user:password``; they never belong in a
URL, which ends up in mount tables, logs and process listings.
"""

from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT_PORT = 2181
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_FORM = "zk://HOST:PORT[,HOST:PORT…]/PATH"


class ZkTarget(NamedTuple):
    """A parsed ``zk://`` URL."""

    hosts: str  # kazoo's connection string: "h1:2181,h2:2181"
    path: str  # absolute base znode path, no trailing slash ("/" for the root)


def _shown(url: str) -> str:
    """The URL as it may appear in a message: anything before an '@' is masked."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def parse_zk_url(url: str) -> ZkTarget:
    """``zk://h1:2181,h2:2181/aurora`` → ``ZkTarget("h1:2181,h2:2181", "/aurora")``.

    Raises ValueError naming the URL (with any user info masked) and what is wrong with it.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "zk":
        raise ValueError(f"{_shown(url)!r} is not a ZooKeeper URL (expected {_FORM})")
    netloc, _, path = rest.partition("/")
    if "@" in netloc:
        raise ValueError(
            f"{_shown(url)!r}: credentials do not belong in a ZooKeeper URL; "
            "give them in a credentials file"
        )
    if "?" in rest or "#" in rest:
        raise ValueError(f"{_shown(url)!r}: a ZooKeeper URL has no query or fragment")
    if not netloc:
        raise ValueError(f"{url!r}: no ZooKeeper host (expected {_FORM})")
    hosts = [_host_port(item, url) for item in netloc.split(",")]
    return ZkTarget(",".join(hosts), check_path("/" + path, f"{url!r}"))


def _host_port(item: str, url: str) -> str:
    if not item:
        raise ValueError(f"{url!r}: empty host in the host list")
    if item.startswith("["):
        host, bracket, tail = item.partition("]")
        host += bracket
        if tail and not tail.startswith(":"):
            raise ValueError(f"{url!r}: bad host {item!r}")
        port = tail[1:] if tail else ""
        ok = bool(_IPV6.fullmatch(host))
    else:
        host, _, port = item.partition(":")
        ok = bool(_HOSTNAME.fullmatch(host))
    if not ok:
        raise ValueError(f"{url!r}: bad host {host!r}")
    if not port and item.endswith(":"):
        raise ValueError(f"{url!r}: empty port after {host!r}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{url!r}: bad port {port!r} for {host} (expected 1-65535)")
    return f"{host}:{int(port) if port else DEFAULT_PORT}"


def check_path(path: str, where: str = "path") -> str:
    """An absolute znode path, normalised (no trailing slash); ValueError when invalid."""
    if not path.startswith("/"):
        raise ValueError(f"{where}: znode path {path!r} must start with '/'")
    trimmed = path.rstrip("/") or "/"
    if trimmed == "/":
        return trimmed
    for part in trimmed[1:].split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"{where}: bad znode path {path!r} (empty, '.' or '..' component)")
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in part):
            raise ValueError(f"{where}: znode path {path!r} holds a control character")
    return trimmed


def check_name(value: str, what: str) -> str:
    """One znode path component (a role, environment or job name)."""
    if not value or value in (".", "..") or "/" in value:
        raise ValueError(f"{what} {value!r} is not a valid znode name (non-empty, no '/')")
    check_path("/" + value, what)
    return value


def split_credentials(text: str, where: str = "credentials") -> tuple[str, str]:
    """``user:password`` → (user, password). The message of the ValueError never holds them."""
    user, sep, password = text.rstrip("\r\n").partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{where}: expected user:password (both non-empty)")
    if any(c.isspace() for c in user):
        raise ValueError(f"{where}: the user name must not contain spaces")
    return user, password
