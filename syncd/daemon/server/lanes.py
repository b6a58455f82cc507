"""Threads for the blocking part of an answer: one reserved for the probes, a few for the rest.

/metrics, token reviews and (later) the webhook share `work`, bounded twice: `workers` threads
and `max_queued` requests waiting for one; past that a request is answered 503 at once rather
than queued. The probes have a thread nobody else uses, so a burst of scrapes or a slow
TokenReview never delays a kubelet probe, and a probe that hangs answers 503 after `probe_timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """Every worker is taken and the queue is full."""


class Lanes:
    def __init__(self, *, workers: int, max_queued: int, probe_timeout: float) -> None:
        self.max_queued = max_queued
        self.probe_timeout = probe_timeout
        self._probes = ThreadPoolExecutor(1, thread_name_prefix="syncd-http-probe")
        self._work = ThreadPoolExecutor(workers, thread_name_prefix="syncd-http-work")
        self._workers = workers
        self._in_flight = 0  # touched from the event loop's thread only

    async def probe(self, fn: Callable[[], T]) -> T:
        """Raises TimeoutError when the probe does not answer within `probe_timeout`."""
        future = asyncio.get_running_loop().run_in_executor(self._probes, fn)
        return await asyncio.wait_for(future, self.probe_timeout)

    async def work(self, fn: Callable[[], T]) -> T:
        if self._in_flight >= self._workers + self.max_queued:
            raise Busy
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._work, fn)
        finally:
            self._in_flight -= 1

    def shutdown(self) -> None:
        self._probes.shutdown(wait=False, cancel_futures=True)
        self._work.shutdown(wait=False, cancel_futures=True)
