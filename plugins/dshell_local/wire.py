"""A minimal HTTP/1.1 client over a Unix socket, for the CLI's plain JSON requests.

``http.client`` pulls in the ``email`` package and ``ssl`` (30-40 ms of every `dshell ps`);
the engine's JSON answers need none of it: a status line, a few headers, and a body with a
Content-Length (or chunked). Streams (follow, attach, events) still use ``http.client``.
"""

from __future__ import annotations

import socket

MAX_HEADER_LINE = 65536
MAX_HEADERS = 100


class Disconnected(ConnectionError):
    """The engine closed the connection before answering (e.g. an idle keep-alive)."""


class ProtocolError(OSError):
    """The answer was not HTTP/1.1 we can read."""


class UnixHTTP:
    """One keep-alive connection; ``roundtrip`` sends a request and reads the whole answer."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = b""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buf = b""

    def roundtrip(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, bool]:
        """(status, body, the server will close) for one request."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        self.sock.settimeout(self.timeout)
        lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        status, fields = self._head()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            data = self._chunked()
        elif "content-length" in fields:
            data = self._exact(int(fields["content-length"]))
        else:  # no length: the body runs to the end of the connection
            data = self._buf + self._rest()
            self._buf = b""
            return status, data, True
        closing = fields.get("connection", "").lower() == "close"
        return status, data, closing

    # ---- reading ---------------------------------------------------------------------------

    def _recv(self) -> bytes:
        assert self.sock is not None
        return self.sock.recv(65536)

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if len(self._buf) > MAX_HEADER_LINE:
                raise ProtocolError("header line too long")
            chunk = self._recv()
            if not chunk:
                raise Disconnected("connection closed")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _head(self) -> tuple[int, dict[str, str]]:
        first = self._line()
        parts = first.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {first[:80]!r}")
        fields: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._line()
            if not line:
                return int(parts[1]), fields
            key, _, value = line.decode("latin-1").partition(":")
            fields[key.strip().lower()] = value.strip()
        raise ProtocolError("too many headers")

    def _exact(self, n: int) -> bytes:
        chunks = [self._buf[:n]]
        have = len(chunks[0])
        self._buf = self._buf[n:]
        while have < n:
            chunk = self._recv()
            if not chunk:
                raise Disconnected("connection closed inside a body")
            take = chunk[: n - have]
            chunks.append(take)
            have += len(take)
            self._buf = chunk[len(take) :]
        return b"".join(chunks)

    def _chunked(self) -> bytes:
        out: list[bytes] = []
        while True:
            size = int(self._line().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._line():  # trailers, then the blank line
                    pass
                return b"".join(out)
            out.append(self._exact(size))
            self._exact(2)  # the CRLF after each chunk

    def _rest(self) -> bytes:
        chunks = []
        while chunk := self._recv():
            chunks.append(chunk)
        return b"".join(chunks)
