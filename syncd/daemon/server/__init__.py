"""/metrics, /healthz and /readyz, on a server built to keep the probes answering under a flood.

Design (issue 27): one asyncio event loop in one thread holds every connection, so an idle or
slow connection costs a socket and a few kilobytes, never a thread (syncd.daemon.server.serve). At
most `max_connections` are open; past that, a new connection displaces the one that has waited
longest for a request, so a flood of idle or slowloris connections churns through itself while
a probe, which sends its request on connecting, gets in (syncd.daemon.server.connections). A request
must arrive whole within `read_timeout`; headers are bounded by bytes and count, bodies by
`max_body_bytes` (413) (syncd.daemon.server.http). Blocking work runs on threads: one reserved for the
probes, a bounded few for /metrics and token reviews, which answer 503 when full rather than
queue (syncd.daemon.server.lanes). Optional TLS re-reads rotated certificates (syncd.daemon.server.tls);
optional bearer-token checks of /metrics ask the Kubernetes API (syncd.daemon.server.auth). The
process's thread count is fixed whatever the clients do.

prometheus_client's own WSGI app renders /metrics, so content negotiation (OpenMetrics, gzip,
`name[]` filters) is exactly the library's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from syncd.config.models import Server as ServerConfig
from syncd.core.errors import ConfigError, ConfigProblem, KubeError
from syncd.daemon.server.auth import AccessReviewer, MetricsGuard, bearer_token
from syncd.daemon.server.http import Request, Response
from syncd.daemon.server.lanes import Busy, Lanes
from syncd.daemon.server.serve import Handler, Limits, Serving
from syncd.daemon.server.tls import ServingTls, TlsFiles, tls_error

__all__ = ["HttpServer", "Limits", "Listener", "TlsFiles"]
log = logging.getLogger(__name__)
Probe = Callable[[], tuple[bool, str]]
_PROBES = ("/healthz", "/readyz")
_UNAUTHORIZED = ("WWW-Authenticate", 'Bearer realm="syncd"')


class Routes:
    """Request to response. Runs on the event loop: anything that may block goes to a lane."""

    def __init__(self, registry: CollectorRegistry, probes: dict[str, Probe], lanes: Lanes, guard: MetricsGuard | None):
        self.metrics = make_wsgi_app(registry)
        self.probes = probes
        self.lanes = lanes
        self.guard = guard

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response.text(HTTPStatus.METHOD_NOT_ALLOWED, "GET or HEAD", ("Allow", "GET, HEAD"))
        if request.path in self.probes:
            return await self._probe(self.probes[request.path])
        if request.path == "/metrics":
            return await self._metrics(request)
        return Response.text(HTTPStatus.NOT_FOUND, "not found: try /metrics, /healthz or /readyz")

    async def _probe(self, probe: Probe) -> Response:
        try:
            ok, text = await self.lanes.probe(probe)
        except TimeoutError:
            ok, text = False, "probe did not answer in time"
        return Response.text(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, text)

    async def _metrics(self, request: Request) -> Response:
        try:
            refused = await self._authorize(request)
            if refused is not None:
                return refused
            return await self.lanes.work(lambda: _render(self.metrics, request))
        except Busy:
            return Response.text(HTTPStatus.SERVICE_UNAVAILABLE, "busy, try again", ("Retry-After", "1"))

    async def _authorize(self, request: Request) -> Response | None:
        """None when the request may read /metrics, else the refusal."""
        if self.guard is None:
            return None
        token = bearer_token(request.header("authorization"))
        if token is None:
            return Response.text(HTTPStatus.UNAUTHORIZED, "a bearer token is required", _UNAUTHORIZED)
        guard = self.guard
        try:
            access = guard.cached(token) or await self.lanes.work(lambda: guard.review(token))
        except KubeError as exc:
            log.warning("cannot review a /metrics token", extra={"error": str(exc)})
            return Response.text(HTTPStatus.SERVICE_UNAVAILABLE, "cannot check the token now", ("Retry-After", "5"))
        if access == "unauthenticated":
            return Response.text(HTTPStatus.UNAUTHORIZED, "token not accepted", _UNAUTHORIZED)
        if access == "forbidden":
            return Response.text(HTTPStatus.FORBIDDEN, "not allowed to get /metrics")
        return None


def _render(app: Callable[..., Iterable[bytes]], request: Request) -> Response:
    """Call prometheus_client's WSGI app with the request's method, query and Accept headers."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query,
        "HTTP_ACCEPT": request.header("accept"),
        "HTTP_ACCEPT_ENCODING": request.header("accept-encoding"),
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answer["status"], answer["headers"] = int(status.split(maxsplit=1)[0]), headers

    body = b"".join(app(environ, start_response))
    headers = [(name, value) for name, value in answer["headers"] if name.lower() != "content-type"]
    content_type = {n.lower(): v for n, v in answer["headers"]}.get("content-type", "text/plain")
    return Response(HTTPStatus(answer["status"]), body, content_type, headers)


class Listener:
    """One socket served by one event loop thread. Binds at construction (a taken port fails
    `syncd run` at once); serves from `start()`."""

    def __init__(
        self,
        address: str,
        routes: Callable[[Lanes], Handler],
        *,
        limits: Limits | None = None,
        tls: TlsFiles | None = None,
        tls_key: str = "server.tls",
    ) -> None:
        serving_tls = _serving_tls(tls, tls_key) if tls else None  # before binding: a bad pair fails without a port
        host, _, port = address.rpartition(":")
        # Scraped (and called by the apiserver) from the pod network: 0.0.0.0 unless the config narrows it.
        self._sock = socket.create_server((host or "0.0.0.0", int(port)), backlog=128)  # noqa: S104
        limits = limits or Limits()
        self.lanes = Lanes(workers=limits.workers, max_queued=limits.max_queued, probe_timeout=limits.probe_timeout)
        self.serving = Serving(self._sock, routes(self.lanes), limits, serving_tls)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="syncd-http", daemon=True)
        self._started = threading.Event()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._close)
            self._thread.join(timeout=10)
        elif not self._started.is_set():
            self._loop.close()  # never started
        self.lanes.shutdown()
        self._sock.close()

    def _close(self) -> None:
        self.serving.close()
        self._loop.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.serving.start())
        finally:
            self._started.set()
        self._loop.run_forever()
        pending = asyncio.all_tasks(self._loop)  # the connections' handlers, their sockets already aborted
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()


class HttpServer(Listener):
    """/metrics, /healthz and /readyz."""

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        *,
        healthy: Probe,
        ready: Probe,
        limits: Limits | None = None,
        tls: TlsFiles | None = None,
        guard: MetricsGuard | None = None,
    ) -> None:
        def routes(lanes: Lanes) -> Routes:
            return Routes(registry, {"/healthz": healthy, "/readyz": ready}, lanes, guard)

        super().__init__(address, routes, limits=limits, tls=tls)

    @classmethod
    def from_config(
        cls,
        config: ServerConfig,
        registry: CollectorRegistry,
        *,
        healthy: Probe,
        ready: Probe,
        reviewer: AccessReviewer | None = None,
    ) -> HttpServer:
        """`reviewer` is needed when `metrics_auth` is `kubernetes`."""
        guard = None
        if config.metrics_auth == "kubernetes":
            if reviewer is None:
                raise ValueError("server.metrics_auth: kubernetes needs an access reviewer")
            guard = MetricsGuard(reviewer)
        tls = TlsFiles(config.tls.cert_file, config.tls.key_file) if config.tls else None
        limits = limits_of(config)
        return cls(config.address, registry, healthy=healthy, ready=ready, limits=limits, tls=tls, guard=guard)


def _serving_tls(files: TlsFiles, key: str) -> ServingTls:
    try:
        return ServingTls(files)
    except (OSError, ssl.SSLError) as exc:
        problem = ConfigProblem(key, f"cannot load {files.cert_file} and {files.key_file}: {tls_error(exc)}")
        raise ConfigError(key.split(".", maxsplit=1)[0], [problem]) from None


def limits_of(config: ServerConfig) -> Limits:
    return Limits(
        max_connections=config.max_connections,
        read_timeout=config.read_timeout.total_seconds(),
        max_body_bytes=config.max_body_bytes,
    )
