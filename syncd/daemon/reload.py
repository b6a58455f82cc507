"""Hot reload: watch the config file, and swap a changed config in without a restart.

Kubernetes updates a mounted ConfigMap by pointing `..data` at a new directory: the file's
path never changes, its inode does. Polling stat() through the symlink every second catches
both that and plain edits, with no inotify dependency; a content hash ignores touches.

A reload swaps the config only: the Vault session (unless `vault:` changed), the cached
credentials whose entries did not change, and the watches that are still wanted go on, so
an edit that moves a Secret to other namespaces costs no login and no source call.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from syncd.config import Config, load_config
from syncd.core.errors import ConfigError
from syncd.core.values import SyncResult
from syncd.engine.metrics import Metrics
from syncd.sources.base import Source

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


class Reconfigurable(Protocol):
    """What a reload needs of the reconciler."""

    def reconfigure(self, config: Config, sources: Mapping[str, Source[Any]]) -> None: ...
    def prune_retired(self, *, dry_run: bool = False, also: Iterable[str] = ()) -> SyncResult: ...


class Rewatchable(Protocol):
    def update(self, config: Config) -> None: ...


class Reschedulable(Protocol):
    def cancel(self, names: Iterable[str]) -> None: ...
    def schedule_now(self, names: Iterable[str] | None = None, *, after_reload: bool = False) -> None: ...


class Reloader:
    """Holds the running config; `reload()` validates the file and swaps a good one in."""

    def __init__(
        self,
        path: Path,
        config: Config,
        *,
        reconciler: Reconfigurable,
        sources: Callable[[Config], Mapping[str, Source[Any]]],
        watches: Rewatchable,
        runs: Reschedulable,
        metrics: Metrics,
        may_write: Callable[[], bool],
        swapped: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.swapped = swapped  # after a good config is in: the status objects follow it
        self.config = config
        self.reconciler = reconciler
        self.sources = sources  # the sources for a new config, keeping what it did not change
        self.watches = watches
        self.runs = runs
        self.metrics = metrics
        self.may_write = may_write

    def reload(self) -> None:
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            self.metrics.record_reload(ok=False)
            log.error("config reload rejected; keeping the running config: %s", exc)
            return
        self.metrics.record_reload(ok=True)
        self.swap(config)

    def swap(self, config: Config) -> None:
        old = self.config
        removed = {s.name for s in old.secrets} - {s.name for s in config.secrets}
        if config.server != old.server or config.leader_election != old.leader_election:
            log.warning("server and leader_election changes take effect at the next restart")
        if config.admission != old.admission:
            log.warning("admission changes take effect at the next restart (the secret specs it serves: now)")
        self.reconciler.reconfigure(config, self.sources(config))
        self.config = config
        self.watches.update(config)
        self.runs.cancel(removed)
        self.metrics.forget(removed, {c.name for c in config.credentials})
        self.metrics.start_at_zero(config)  # the series of added specs (and of pull_failures turned on)
        if self.may_write():
            self.reconciler.prune_retired(also=removed)
            self.runs.schedule_now(after_reload=True)
        self.swapped()
        log.info("config reloaded", extra={"specs": len(config.secrets), "removed": sorted(removed)})
