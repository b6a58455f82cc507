"""Watch the config file for changes, including a ConfigMap mount's symlink swap.

Kubernetes updates a mounted ConfigMap by pointing `..data` at a new directory: the file's
path never changes, its inode does. Polling stat() through the symlink every second catches
both that and plain edits, with no inotify dependency; a content hash ignores touches.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    def __init__(self, path: Path, on_change: Callable[[], None], *, interval: float = 1.0) -> None:
        self.path = path
        self.on_change = on_change
        self.interval = interval
        self.stopped = threading.Event()
        self._seen = _fingerprint(path)
        self._digest = _digest(path)
        self._thread = threading.Thread(target=self._run, name="syncd-config-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            fingerprint = _fingerprint(self.path)
            if fingerprint == self._seen:
                continue
            self._seen = fingerprint
            digest = _digest(self.path)
            if digest is None or digest == self._digest:
                continue  # missing mid-swap, or touched without a change: nothing to do
            self._digest = digest
            try:
                self.on_change()
            except Exception:  # a bad reload must never stop us watching for the next one
                log.exception("config reload failed")
