"""A small client of the Ray dashboard's REST API, on the standard library (``http.client``).

The CLI never imports ``ray``: its cold start would cost more than a second. Every request is
one short HTTP/1.1 exchange with a timeout; errors are mapped to dshell's at this edge:
refused or timed-out connections are UNREACHABLE, 404 is NOT_FOUND, 401/403 name the token,
anything else from the dashboard is BACKEND with its text.

A source is ``http://HOST:PORT`` (the dashboard address, no path, query or user info).
Clusters started with token authentication (``RAY_AUTH_MODE=token``, as ``fw launch ray``
does) need the token: it is read from the file named by the mount option ``token_file``,
else from ``$RAY_AUTH_TOKEN``; it never appears in the mount table or in messages.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from dshell.errors import (
    BackendError,
    ConfigError,
    NotFoundError,
    UnreachableError,
    UsageError,
)

_FORM = "http://HOST:PORT (the Ray dashboard, e.g. http://127.0.0.1:8265)"
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\]")


class Address(NamedTuple):
    host: str  # without brackets
    port: int


def parse_source(source: str) -> Address:
    """``http://127.0.0.1:8265`` → Address; UsageError naming the source otherwise."""
    scheme, sep, rest = source.partition("://")
    if not sep or scheme.lower() != "http":
        raise UsageError(f"mount -t ray {source!r}: expected {_FORM}")
    netloc = rest.rstrip("/")
    if "@" in netloc:
        raise UsageError(f"mount -t ray: no user info in the source; expected {_FORM}")
    if any(c in netloc for c in "/?#") or not netloc:
        raise UsageError(f"mount -t ray {source!r}: no path, query or fragment; expected {_FORM}")
    if netloc.startswith("["):
        host, _, tail = netloc.partition("]")
        host += "]"
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    if not _HOST.fullmatch(host):
        raise UsageError(f"mount -t ray {source!r}: bad host {host!r}; expected {_FORM}")
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise UsageError(
            f"mount -t ray {source!r}: the dashboard port is required (1-65535); expected {_FORM}"
        )
    return Address(host.strip("[]"), int(port))


def read_token(options: dict[str, str], environ: dict[str, str] | None = None) -> str | None:
    """The bearer token: ``token_file`` option, else ``$RAY_AUTH_TOKEN``, else None."""
    path = options.get("token_file")
    if path:
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"mount -o token_file={path}: cannot read it ({exc.strerror})"
            ) from None
        if not token:
            raise ConfigError(f"mount -o token_file={path}: the file is empty")
        return token
    env = os.environ if environ is None else environ
    return env.get("RAY_AUTH_TOKEN") or None


class RayClient:
    """JSON over HTTP to one dashboard. Not thread-safe; one backend uses it at a time."""

    def __init__(self, address: Address, token: str | None, timeout: float) -> None:
        self.address = address
        self.token = token
        self.timeout = timeout

    @property
    def url(self) -> str:
        host = f"[{self.address.host}]" if ":" in self.address.host else self.address.host
        return f"http://{host}:{self.address.port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (or None for an empty body)."""
        if query:
            path += "?" + urlencode(query, doseq=True)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection(
            self.address.host, self.address.port, timeout=timeout or self.timeout
        )
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            reason = "timed out" if isinstance(exc, socket.timeout) else str(exc) or type(exc)
            raise UnreachableError(f"Ray dashboard at {self.url}: {reason}") from None
        finally:
            conn.close()
        return self._answer(method, path, resp.status, raw)

    def _answer(self, method: str, path: str, status: int, raw: bytes) -> Any:
        text = raw.decode("utf-8", "replace")
        if status in (401, 403):
            raise ConfigError(
                f"Ray dashboard at {self.url} refused the request ({status}): "
                + ("the token was not accepted" if self.token else "it needs a token"),
                hint="mount -o token_file=PATH (a file holding the cluster's RAY_AUTH_TOKEN)",
            )
        if status == 404:
            raise NotFoundError(_first_line(text) or f"{path}: not found at {self.url}")
        if status >= 400:
            where = path.split("?", maxsplit=1)[0]
            raise BackendError(
                f"Ray dashboard at {self.url}: {method} {where} answered {status}: "
                + (_last_line(text) or "no detail")
            )
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise BackendError(
                f"Ray dashboard at {self.url}: {path.split('?', maxsplit=1)[0]} did not answer JSON"
            ) from None

    # ---- the endpoints dshell uses -------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/version") or {})

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/jobs/") or [])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/jobs/{quote(job_id, safe='')}") or {})

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/api/jobs/", body) or {})

    def stop(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/api/jobs/{quote(job_id, safe='')}/stop") or {})

    def logs(self, job_id: str) -> str:
        answer = self.request("GET", f"/api/jobs/{quote(job_id, safe='')}/logs") or {}
        return str(answer.get("logs") or "") if isinstance(answer, dict) else ""

    def state(self, kind: str, **filters: str) -> dict[str, Any]:
        """``/api/v0/{nodes,tasks,actors}``: the whole answer (goldens keep its envelope)."""
        query: dict[str, Any] = {"limit": 1000, "detail": 1, "timeout": int(self.timeout)}
        if filters:
            query["filter_keys"] = list(filters)
            query["filter_predicates"] = ["="] * len(filters)
            query["filter_values"] = list(filters.values())
        return dict(self.request("GET", f"/api/v0/{kind}", query=query) or {})

    def node_summary(self) -> dict[str, Any]:
        """``/nodes?view=summary``: per-node usage (host cpu %, memory) and logical use."""
        return dict(self.request("GET", "/nodes", query={"view": "summary"}) or {})


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
