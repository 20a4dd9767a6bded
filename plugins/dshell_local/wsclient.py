"""A minimal synchronous WebSocket client (RFC 6455) over a Unix socket, for ``exec``.

Only what exec needs: the upgrade handshake, masked binary/text frames out, unfragmented or
fragmented frames in, ping/pong and close. Standard library only (the CLI imports it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading

from dshell import errors

from . import client as engine_client

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocket:
    """One open WebSocket; ``send_*`` may be called from another thread than ``recv``."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self._buf = leftover
        self._send_lock = threading.Lock()
        self.closed = False

    @classmethod
    def connect(cls, socket_path: str, path: str, timeout: float = 30.0) -> WebSocket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            sock.close()
            raise errors.UnreachableError(f"the engine at {socket_path} does not answer") from exc
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            + key
            + b"\r\n\r\n"
        )
        head, leftover = _read_head(sock)
        status_line, _, rest = head.partition(b"\r\n")
        status = int(status_line.split()[1])
        if status != 101:
            body = _read_body(sock, rest, leftover)
            sock.close()
            engine_client.raise_for(status, body)
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        if accept not in rest:
            sock.close()
            raise errors.BackendError("the engine answered a bad WebSocket handshake")
        sock.settimeout(None)
        return cls(sock, leftover)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self._send_lock:
            if not self.closed:
                self.sock.sendall(header + mask + masked)

    def send_binary(self, payload: bytes) -> None:
        self.send(OP_BINARY, payload)

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode())

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self._buf += data
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv(self) -> bytes | None:
        """The next data message (text as UTF-8 bytes), or None once the socket is closed."""
        message = b""
        try:
            while True:
                b1, b2 = self._read(2)
                opcode, length = b1 & 0x0F, b2 & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", self._read(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", self._read(8))
                payload = self._read(length)
                if opcode == OP_PING:
                    self.send(OP_PONG, payload)
                elif opcode == OP_CLOSE:
                    self.close()
                    return None
                elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                    message += payload
                    if b1 & 0x80:
                        return message
        except (EOFError, OSError):
            self.closed = True
            return None

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.send(OP_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        self.closed = True
        self.sock.close()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise errors.BackendError("the engine closed the connection during the handshake")
        data += chunk
        if len(data) > 65536:
            raise errors.BackendError("the engine's handshake answer is too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_body(sock: socket.socket, headers: bytes, body: bytes) -> bytes:
    """The body of a refused handshake (aiohttp answers with a Content-Length)."""
    length = 0
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return body
