"""A bound on open connections that never locks the probes out.

Past `limit`, a new connection takes the place of the one that has waited longest for a request
(a connection that never sent one, sent it too slowly, or idles between keep-alive requests).
A flood of idle or slow connections therefore keeps pushing its own oldest members out, and a
kubelet probe, which sends its request as soon as it connects, is read before it can be pushed
out. Only when every open connection is being answered is a new one refused.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class Connections:
    """Open connections; all calls come from the event loop's thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: set[asyncio.WriteTransport] = set()
        self._waiting: OrderedDict[asyncio.WriteTransport, None] = OrderedDict()  # oldest first
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, transport: asyncio.WriteTransport) -> bool:
        """Make room for `transport` (closing the longest waiter) or refuse it (False)."""
        if len(self._open) >= self.limit:
            if not self._waiting:
                self.refused += 1
                return False
            oldest, _ = self._waiting.popitem(last=False)
            self._open.discard(oldest)
            self.evicted += 1
            _abort(oldest)
        self._open.add(transport)
        return True

    def waiting(self, transport: asyncio.WriteTransport) -> None:
        """`transport` now waits for a request (or for its TLS handshake)."""
        self._waiting[transport] = None
        self._waiting.move_to_end(transport)

    def busy(self, transport: asyncio.WriteTransport) -> None:
        """A request of `transport` is being answered: it is not evicted meanwhile."""
        self._waiting.pop(transport, None)

    def release(self, transport: asyncio.WriteTransport) -> None:
        self._waiting.pop(transport, None)
        self._open.discard(transport)

    def abort_all(self) -> None:
        for transport in list(self._open):
            self.release(transport)
            _abort(transport)

    def is_open(self, transport: asyncio.WriteTransport) -> bool:
        return transport in self._open


def _abort(transport: asyncio.WriteTransport) -> None:
    transport.abort()  # RST: the socket and its buffers are freed now, not after a FIN handshake
