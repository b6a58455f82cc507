"""A minimal Kubernetes API client: raw HTTPS with keep-alive, one connection per thread.

The benchmark's own reads and writes (populating the cluster, verifying, the write floor) go
through this instead of the `kubernetes` package, so that what they cost is as close as Python
gets to the apiserver's own cost, and so that nothing here shares code with syncd.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MERGE_PATCH = "application/merge-patch+json"


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {body[:200]!r}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    """Where the apiserver is and the admin client certificate (system:masters) to use."""

    url: str
    ca_cert: Path
    client_cert: Path
    client_key: Path


class RawKube:
    """Thread-safe: every thread gets its own persistent HTTPS connection."""

    def __init__(self, credentials: Credentials, *, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(credentials.url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 443
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(credentials.ca_cert))
        self.context.load_cert_chain(str(credentials.client_cert), str(credentials.client_key))
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def request(
        self, method: str, path: str, body: object = None, *, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        """One request on this thread's connection; reconnects once if the server closed it."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"} if payload else {}
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, body: object = None, *, content_type: str = "application/json") -> bytes:
        status, data = self.request(method, path, body, content_type=content_type)
        if status >= 300:
            raise ApiError(method, path, status, data)
        return data

    def json(self, path: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("GET", path)))

    def list_items(self, path: str, **query: str) -> Iterator[dict[str, Any]]:
        """Every item of a LIST, in pages of 500."""
        token = ""
        while True:
            params = {**query, "limit": "500", **({"continue": token} if token else {})}
            body = self.json(f"{path}?{urllib.parse.urlencode(params)}")
            yield from body.get("items") or []
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def secret_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")
