"""Bearer-token protection of /metrics, decided by the Kubernetes API as kube-rbac-proxy does.

A TokenReview says who the token belongs to; a SubjectAccessReview says whether they may
`get` the non-resource URL `/metrics`. Prometheus Operator ServiceMonitors send the token of
Prometheus's ServiceAccount (`bearerTokenFile` / `authorization`). Answers are cached for
`ttl` seconds under the SHA-256 of the token, so a scrape every 15 s costs two API calls a
minute; a revoked token keeps its answer that long. The token itself is never stored, logged
or put into an error message.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol

Access = Literal["allowed", "forbidden", "unauthenticated"]
CACHE_SIZE = 1024


class AccessReviewer(Protocol):
    """What the guard needs of the cluster (syncd.kube.reviews.AccessReviews); errors: KubeError."""

    def access(self, token: str, *, path: str, verb: str) -> Access: ...


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class AccessCache:
    """Answers by token hash, for `ttl` seconds, at most CACHE_SIZE of them (oldest dropped first)."""

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._answers: OrderedDict[str, tuple[Access, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> Access | None:
        key = _key(token)
        with self._lock:
            found = self._answers.get(key)
            if found is None or found[1] <= self.clock():
                self._answers.pop(key, None)
                return None
            return found[0]

    def put(self, token: str, access: Access) -> None:
        with self._lock:
            self._answers[_key(token)] = (access, self.clock() + self.ttl)
            while len(self._answers) > CACHE_SIZE:
                self._answers.popitem(last=False)


class MetricsGuard:
    def __init__(self, reviewer: AccessReviewer, cache: AccessCache | None = None) -> None:
        self.reviewer = reviewer
        self.cache = cache or AccessCache()

    def cached(self, token: str) -> Access | None:
        return self.cache.get(token)

    def review(self, token: str, path: str = "/metrics") -> Access:
        """Blocking (two API calls): run it off the event loop."""
        access = self.reviewer.access(token, path=path, verb="get")
        self.cache.put(token, access)
        return access


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
