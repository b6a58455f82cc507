"""The admission webhook's HTTPS listener: POST /mutate, and GET /healthz for whoever checks the port.

It is a `Listener` of its own (its own address, event loop thread and limits), so a burst of Pod
creations never queues behind a scrape, and a flood of scrapes never delays an admission. The
same limits hold as for /metrics: whole requests within `read_timeout`, bodies bounded by
`max_body_bytes` before a byte of them is read, connections bounded with the longest waiter
displaced. The review itself is answered on the event loop: it reads memory only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from syncd.core.values import MUTATE_PATH
from syncd.daemon.server import Listener
from syncd.daemon.server.http import Request, Response
from syncd.daemon.server.lanes import Lanes
from syncd.daemon.server.serve import Limits
from syncd.daemon.server.tls import TlsFiles

Mutate = Callable[[bytes], Awaitable[Response]]


class WebhookRoutes:
    def __init__(self, mutate: Mutate) -> None:
        self.mutate = mutate

    async def __call__(self, request: Request) -> Response:
        if request.path == MUTATE_PATH:
            if request.method != "POST":
                return Response.text(HTTPStatus.METHOD_NOT_ALLOWED, "POST an AdmissionReview", ("Allow", "POST"))
            return await self.mutate(request.body)
        if request.path == "/healthz" and request.method in ("GET", "HEAD"):
            return Response.text(HTTPStatus.OK, "ok")
        return Response.text(HTTPStatus.NOT_FOUND, f"not found: POST {MUTATE_PATH}")


class WebhookServer(Listener):
    def __init__(self, address: str, mutate: Mutate, *, tls: TlsFiles, limits: Limits | None = None) -> None:
        def routes(_: Lanes) -> WebhookRoutes:
            return WebhookRoutes(mutate)

        super().__init__(address, routes, limits=limits, tls=tls, tls_key="admission.tls")
