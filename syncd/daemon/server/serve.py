"""The connection loop: one asyncio event loop in one thread reads every request.

An open connection costs a socket and a small buffer, not a thread, so idle and slow clients
are cheap; `Connections` bounds how many there are. Each request must arrive whole, headers
and body, within `read_timeout` of the connection (or of the previous answer on a kept-alive
connection), and each answer must be taken by the client within it too; a client that does
not keep up is cut off. Handlers get complete requests only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from syncd.daemon.server.connections import Connections
from syncd.daemon.server.http import HttpError, Request, Response, body_length, encode, parse_head, read_head
from syncd.daemon.server.tls import ServingTls

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
_GONE = (ConnectionError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError, OSError)


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    read_timeout: float = 10.0  # seconds: a whole request, or the wait for the next one
    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 16 << 10
    workers: int = 4  # threads answering /metrics (and token reviews); probes have one of their own
    max_queued: int = 16  # requests waiting for a worker; past it, 503
    probe_timeout: float = 5.0
    body_budget: int = 8 << 20  # request body bytes buffered at once, over all connections; past it, 503


class Serving:
    def __init__(self, sock: socket.socket, handler: Handler, limits: Limits, tls: ServingTls | None) -> None:
        self.sock = sock
        self.handler = handler
        self.limits = limits
        self.tls = tls
        self.connections = Connections(limits.max_connections)
        self.body_bytes = 0  # reserved by the bodies being read or answered now
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, sock=self.sock, limit=self.limits.max_header_bytes)

    def close(self) -> None:
        """Stop accepting and drop every open connection (from the event loop's thread)."""
        if self._server is not None:
            self._server.close()
        self.connections.abort_all()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        if not self.connections.admit(transport):
            transport.abort()
            return
        clean = False
        try:
            clean = await self._converse(reader, writer, transport)
        except _GONE:
            pass
        except asyncio.CancelledError:
            # The server is stopping. Not re-raised: asyncio's stream callback would log a cancelled
            # connection task as an error, and nothing awaits this task.
            pass
        finally:
            self.connections.release(transport)
            _close(writer, transport, clean)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: asyncio.WriteTransport
    ) -> bool:
        """Answer requests until the client or a limit ends it; True when it ended cleanly."""
        self.connections.waiting(transport)
        if self.tls is not None:
            await writer.start_tls(self.tls.current(), ssl_handshake_timeout=self.limits.read_timeout)
        while self.connections.is_open(transport):
            self.connections.waiting(transport)
            request = await self._next_request(reader, writer)
            if request is None:
                return True
            self.connections.busy(transport)
            if not await self._answer(writer, request):
                return True
        return False

    async def _next_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
        """None when the connection is done: the client closed it, or its request was refused."""
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                return await self._read(reader, writer)
        except HttpError as exc:
            await self._send(writer, Response.text(exc.status, str(exc), *exc.headers), keep_alive=False)
            return None

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
        head = await read_head(reader)
        if head is None:
            return None
        request = parse_head(head)
        length = body_length(request, self.limits.max_body_bytes)
        if not length:
            return request
        self._reserve(length)
        try:
            if request.header("expect").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length)
        except BaseException:
            self.body_bytes -= length
            raise
        return Request(request.method, request.path, request.query, request.version, request.headers, body)

    def _reserve(self, length: int) -> None:
        """Bodies in memory are bounded in total, not only each: slow uploads on every connection
        would otherwise hold max_connections x max_body_bytes."""
        if self.body_bytes + length > self.limits.body_budget:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "too many request bodies in flight", ("Retry-After", "1"))
        self.body_bytes += length

    async def _answer(self, writer: asyncio.StreamWriter, request: Request) -> bool:
        """Send the handler's answer; True when the connection stays open for another request."""
        try:
            response = await self.handler(request)
        except Exception:
            log.exception("HTTP handler failed", extra={"path": request.path})
            response = Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        finally:
            self.body_bytes -= len(request.body)
        keep_alive = request.keep_alive
        await self._send(writer, response, keep_alive=keep_alive, head_only=request.method == "HEAD")
        return keep_alive

    async def _send(
        self, writer: asyncio.StreamWriter, response: Response, *, keep_alive: bool, head_only: bool = False
    ) -> None:
        writer.write(encode(response, keep_alive=keep_alive, head_only=head_only))
        async with asyncio.timeout(self.limits.read_timeout):
            await writer.drain()


def _close(writer: asyncio.StreamWriter, transport: asyncio.WriteTransport, clean: bool) -> None:
    if clean:
        writer.close()
    else:
        transport.abort()  # a timed-out or broken client: free it now
