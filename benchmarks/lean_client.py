"""Load-generating clients with the least CPU per message, for benchmarks that run many
connections in one process on the same cores as the server they measure.

`LeanWebSocket` speaks just enough RFC 6455 for a graphql-transport-ws subscriber: the
opening handshake, unfragmented or fragmented text frames from the server, pings (it
answers them, so the server's keepalive never closes it) and the close frame. A text
message is handed to a callback from `data_received`, stamped with the time its bytes
arrived: no task, queue or parser object per message. `LeanHTTP` sends GETs over one
keep-alive HTTP/1.1 connection and reads answers that carry a Content-Length.

Both check what they rely on (the 101 status and accept key, the answer's status line)
and raise otherwise; neither is a general client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable
from typing import Any, cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA

# (payload, arrival time): one text message from the server.
OnMessage = Callable[[bytes, float], None]


class LeanWebSocket(asyncio.Protocol):
    def __init__(self, host: str, path: str, subprotocol: str) -> None:
        self._host = host
        self._path = path
        self._subprotocol = subprotocol
        self._key = base64.b64encode(os.urandom(16))
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fragments: list[bytes] = []
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._on_message: OnMessage | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, url: str, subprotocol: str) -> LeanWebSocket:
        """Open `ws://host:port/path`."""
        rest = url.removeprefix("ws://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: cls(hostport, "/" + path, subprotocol), host, int(port or 80)
        )
        await protocol._handshake
        return protocol

    def on_message(self, callback: OnMessage) -> None:
        """From now on, text messages go to `callback` instead of `recv`."""
        self._on_message = callback

    async def recv(self) -> bytes:
        return await self._inbox.get()

    def send_json(self, message: Any) -> None:
        self._send_frame(_TEXT, json.dumps(message).encode())

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._send_frame(_CLOSE, struct.pack("!H", 1000))
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is no asyncio.Transport subclass, but has its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: %s\r\n\r\n"
            % (self._path.encode(), self._host.encode(), self._key, self._subprotocol.encode())
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        buffer = self._buffer
        buffer += data
        if not self._handshake.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._accept(bytes(buffer[:end]))
            del buffer[: end + 4]
        offset = 0
        size = len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length = second & 0x7F
            start = offset + 2
            if length == 126:
                if size - offset < 4:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            if second & 0x80:
                raise ConnectionError("a server frame must not be masked")
            end = start + length
            if end > size:
                break
            self._frame(first, bytes(buffer[start:end]), arrived)
            offset = end
        if offset:
            del buffer[:offset]

    def _accept(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 101"):
            self._handshake.set_exception(ConnectionError(lines[0].decode(errors="replace")))
            return
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:] if b": " in line)
        expected = base64.b64encode(
            hashlib.sha1(self._key + _GUID, usedforsecurity=False).digest()
        ).lower()
        if headers.get(b"sec-websocket-accept") != expected:
            self._handshake.set_exception(ConnectionError("wrong Sec-WebSocket-Accept"))
            return
        self._handshake.set_result(None)

    def _frame(self, first: int, payload: bytes, arrived: float) -> None:
        opcode = first & 0x0F
        if opcode == _TEXT or opcode == 0:  # text, or its continuation
            if not first & 0x80:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            if self._on_message is not None:
                self._on_message(payload, arrived)
            else:
                self._inbox.put_nowait(payload)
        elif opcode == _PING:
            self._send_frame(_PONG, payload)
        elif opcode == _CLOSE:
            self.close()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        assert self._transport is not None
        # Client frames are masked; a zero mask leaves the payload as it is.
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        self._transport.write(header + b"\0\0\0\0" + payload)


class LeanHTTP:
    """GETs over one keep-alive HTTP/1.1 connection, one at a time; a connection the
    server closed while idle (its keep-alive timeout) is opened again."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._host = f"{host}:{port}".encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @classmethod
    async def connect(cls, host: str, port: int) -> LeanHTTP:
        client = cls(host, port)
        client._streams = await asyncio.open_connection(host, port)
        return client

    async def get(self, path: str) -> int:
        """GET `path`; returns the status."""
        request = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), self._host)
        if self._streams is None or self._streams[0].at_eof():
            await self._reopen()
        try:
            return await self._exchange(request)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            # Closed by the server before it read the request: send it again.
            await self._reopen()
            return await self._exchange(request)

    async def _exchange(self, request: bytes) -> int:
        assert self._streams is not None
        reader, writer = self._streams
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        else:
            raise ConnectionError("an answer without Content-Length")
        if length:
            await reader.readexactly(length)
        return status

    async def _reopen(self) -> None:
        await self.aclose()
        self._streams = await asyncio.open_connection(*self._address)

    async def aclose(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
