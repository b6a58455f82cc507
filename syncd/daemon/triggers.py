"""Debounced, targeted re-syncs requested by watch events.

A key is (spec, namespace): one namespace of one spec, or (spec, None) for the whole spec. A
burst of events (a namespace created with its ServiceAccounts) collapses into one run per key,
and a pending whole-spec run absorbs that spec's single-namespace ones. Re-syncs use cached
credentials: no source call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
Key = tuple[str, str | None]


class TriggerQueue:
    def __init__(self, run: Callable[[Key], None], *, debounce: float = 0.2) -> None:
        self.run = run
        self.debounce = debounce
        self._pending: set[Key] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="syncd-triggers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, *keys: Key) -> None:
        with self._wake:
            self._pending.update(keys)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def _take(self) -> list[Key]:
        with self._wake:
            while not self._pending and not self._stopped:
                self._wake.wait()
            if self._stopped:
                return []
            self._wake.wait(self.debounce)  # let the rest of a burst arrive
            taken, self._pending = self._pending, set()
        whole = {spec for spec, namespace in taken if namespace is None}
        return sorted((k for k in taken if k[1] is None or k[0] not in whole), key=lambda k: (k[0], k[1] or ""))

    def _loop(self) -> None:
        while True:
            keys = self._take()
            if not keys:
                return
            for key in keys:
                try:
                    self.run(key)
                except Exception:  # one failing re-sync must not stop the others
                    log.exception("triggered sync of %s failed", key[0])
