"""A small HTTP proxy between the replicas and the apiserver, under the soak's control.

The replicas speak plain HTTP to it on loopback (their ServiceAccount tokens pass through
untouched, so the apiserver still knows each replica); it speaks TLS to the apiserver. While a
429 burst is on, it answers part of the requests itself with `429 Too Many Requests` and
`Retry-After: 1`, as an apiserver shedding load does. Watches are streamed chunk by chunk.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}
THROTTLED_BODY = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "TooManyRequests",
        "code": 429,
        "message": "Too many requests, please try again later.",
    }
).encode()


class Proxy:
    def __init__(self, upstream: str, ca: Path, seed: int) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 443
        self.context = ssl.create_default_context(cafile=str(ca))
        self.throttle = 0.0  # the share of non-watch requests answered 429
        self.throttled = 0
        self.forwarded = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="soak-proxy", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def should_throttle(self, watch: bool) -> bool:
        with self._lock:
            hit = not watch and self.throttle > 0 and self._rng.random() < self.throttle
            if hit:
                self.throttled += 1
            else:
                self.forwarded += 1
            return hit

    def connect(self, watch: bool) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=None if watch else 60)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 resets a rollout's burst of 30 connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A replica killed mid-request resets its connections: expected here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: ARG002 - the base class's signature
            return  # request lines would flood the soak's output

        def _forward(self) -> None:
            watch = "watch=true" in self.path or "watch=1" in self.path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if proxy.should_throttle(watch):
                self._answer(429, THROTTLED_BODY, {"Retry-After": "1", "Content-Type": "application/json"})
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream = proxy.connect(watch)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                if watch and response.status == 200:
                    self._stream(response)
                else:
                    self._answer(response.status, response.read(), dict(response.getheaders()))
            except (OSError, http.client.HTTPException):
                self._fail()
            finally:
                upstream.close()

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, response: http.client.HTTPResponse) -> None:
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            # The apiserver going away ends the stream: the client watches again.
            with contextlib.suppress(OSError, http.client.HTTPException):
                while chunk := response.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True

        def _fail(self) -> None:
            """The apiserver is unreachable: close the client's connection, as a dead apiserver would."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler
