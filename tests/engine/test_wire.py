"""The CLI's minimal HTTP/1.1 transport (dshell_local.wire) against a scripted server."""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import pytest

from dshell_local.wire import Disconnected, ProtocolError, UnixHTTP


def serve_once(path: str, replies: list[bytes], seen: list[bytes]) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX)
    Path(path).unlink(missing_ok=True)
    listener.bind(path)
    listener.listen(4)

    def run() -> None:
        with listener:
            while replies:
                conn, _ = listener.accept()
                with conn:
                    while replies:
                        data = conn.recv(65536)
                        if not data:
                            break
                        seen.append(data)
                        reply = replies.pop(0)
                        if reply == b"CLOSE":
                            break
                        conn.sendall(reply)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _path() -> str:
    return str(Path(tempfile.mkdtemp(prefix="dw", dir="/tmp")) / "s.sock")


def test_content_length_keep_alive_and_request_format() -> None:
    path, seen = _path(), []
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope!",
    ]
    serve_once(path, replies, seen)
    c = UnixHTTP(path, 5)
    assert c.roundtrip("GET", "/v1/tasks?all=1", None, {}) == (200, b"[]", False)
    assert c.roundtrip("POST", "/v1/x", b"{}", {"Content-Type": "application/json"}) == (
        404,
        b"nope!",
        True,
    )
    assert seen[0].startswith(b"GET /v1/tasks?all=1 HTTP/1.1\r\nHost: localhost\r\n")
    assert b"Content-Length: 2\r\n\r\n{}" in seen[1]
    c.close()


def test_chunked_body_with_extensions() -> None:
    path, seen = _path(), []
    body = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n"
    )
    serve_once(path, [body], seen)
    c = UnixHTTP(path, 5)
    assert c.roundtrip("GET", "/", None, {}) == (200, b"abcdefg", False)
    c.close()


def test_closed_connection_and_garbage() -> None:
    path, seen = _path(), []
    serve_once(path, [b"CLOSE"], seen)
    c = UnixHTTP(path, 5)
    with pytest.raises(Disconnected):
        c.roundtrip("GET", "/", None, {})
    c.close()
    path2: str = _path()
    serve_once(path2, [b"SSH-2.0-nope\r\n\r\n"], [])
    c2 = UnixHTTP(path2, 5)
    with pytest.raises(ProtocolError):
        c2.roundtrip("GET", "/", None, {})
    c2.close()
