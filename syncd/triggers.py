"""Debounced, targeted re-syncs requested by watch events.

A burst of events (a namespace created with its ServiceAccounts, a relabel of fifty namespaces)
collapses into one re-sync per spec. Re-syncs use cached credentials: no source call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class TriggerQueue:
    def __init__(self, run: Callable[[str], None], *, debounce: float = 0.2) -> None:
        self.run = run
        self.debounce = debounce
        self._pending: set[str] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="syncd-triggers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, *specs: str) -> None:
        with self._wake:
            self._pending.update(specs)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def _take(self) -> list[str]:
        with self._wake:
            while not self._pending and not self._stopped:
                self._wake.wait()
            if self._stopped:
                return []
            self._wake.wait(self.debounce)  # let the rest of a burst arrive
            taken, self._pending = sorted(self._pending), set()
            return taken

    def _loop(self) -> None:
        while True:
            specs = self._take()
            if not specs:
                return
            for spec in specs:
                try:
                    self.run(spec)
                except Exception:  # one failing re-sync must not stop the others
                    log.exception("triggered sync of %s failed", spec)
