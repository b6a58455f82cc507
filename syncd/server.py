"""/metrics, /healthz and /readyz on one small threaded WSGI server.

prometheus_client's own start_http_server cannot add routes, so its WSGI app is mounted here
beside the probes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

StartResponse = Callable[..., Any]
Probe = Callable[[], tuple[bool, str]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the useful log lines."""


def _plain(start_response: StartResponse, ok: bool, text: str) -> Iterable[bytes]:
    start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
    return [(text + "\n").encode()]


def application(registry: CollectorRegistry, healthy: Probe, ready: Probe) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _plain(start_response, *healthy())
        if path == "/readyz":
            return _plain(start_response, *ready())
        if path == "/metrics":
            return list(metrics(environ, start_response))
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    return app


class HttpServer:
    def __init__(self, address: str, registry: CollectorRegistry, *, healthy: Probe, ready: Probe) -> None:
        host, _, port = address.rpartition(":")
        self._server = make_server(
            host or "0.0.0.0",  # noqa: S104 - the metrics endpoint is meant to be scraped from the pod network
            int(port),
            application(registry, healthy, ready),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="syncd-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
