"""`syncd run`: the schedule, the watches, the HTTP endpoints, leader election, hot reload.

Threads: the scheduler's pool runs one job per secret spec (fresh credentials); the trigger
queue runs watch-requested re-syncs (cached credentials, no source call); watch loops, the
config watcher, the elector and the HTTP server each have their own. A per-spec lock keeps a
spec's scheduled and triggered syncs from ever overlapping.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import uuid
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry, disable_created_metrics

from syncd import timing
from syncd.app import ClusterOptions, build_sources, write_workers
from syncd.config import Config, SecretSpec, load_config
from syncd.errors import ConfigError
from syncd.fetcher import Freshness
from syncd.kube.client import load_api_client
from syncd.kube.cluster import KubeCluster
from syncd.kube.events import EventRecorder
from syncd.kube.leader import LeaderElector
from syncd.kube.watches import watch_loops
from syncd.metrics import Metrics
from syncd.model import DesiredSecret
from syncd.reconciler import Reconciler
from syncd.reload import ConfigWatcher
from syncd.scheduler import Scheduler
from syncd.server import HttpServer
from syncd.triggers import Key, TriggerQueue
from syncd.watch import Loop, WatchRouter, WatchSet
from syncd.watch_events import WatchEvent

log = logging.getLogger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Daemon:
    def __init__(self, config_path: Path, options: ClusterOptions, registry: CollectorRegistry | None = None) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        disable_created_metrics()  # `_created` series double the scrape and nobody alerts on them
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        workers = write_workers()
        self.api = load_api_client(kubeconfig=options.kubeconfig, context=options.context, pool_size=workers + 8)
        self.cluster = KubeCluster(self.api)
        self.events = EventRecorder(self.api, instance=self.config.instance)
        self.reconciler = self._reconciler(self.config)
        self.scheduler = Scheduler(workers=max(4, len(self.config.secrets) + 2))
        self.triggers = TriggerQueue(self._triggered_sync)
        self.router = WatchRouter(lambda: self.config, self._rendered)
        self.watches = WatchSet(self._watch_loops)
        self.config_watcher = ConfigWatcher(config_path, self.reload)
        self.elector = self._elector(self.config)
        self.server = HttpServer(self.config.server.address, self.registry, healthy=self.healthy, ready=self.ready)
        self.stopping = threading.Event()
        self._locks: dict[str, threading.Lock] = {}
        self._failures: dict[str, int] = {}
        self._attempted: set[str] = set()
        self._state_lock = threading.Lock()

    # -- composition -------------------------------------------------------------------------

    def _reconciler(self, config: Config) -> Reconciler:
        return Reconciler(
            config=config,
            sources=build_sources(config),
            cluster=self.cluster,
            metrics=self.metrics,
            workers=write_workers(),
            events=self.events,
        )

    def _watch_loops(self, config: Config) -> dict[str, Loop]:
        return dict(
            watch_loops(
                self.api,
                secret_names=[s.name for s in config.secrets],
                service_account_names=config.service_account_names(),
                on_event=self._on_event,
                on_relist=self._on_relist,
            )
        )

    def _elector(self, config: Config) -> LeaderElector | None:
        election = config.leader_election
        if not election.enabled:
            return None
        identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        return LeaderElector(
            self.api,
            namespace=election.namespace,
            name=election.name,
            identity=identity,
            lease_duration=election.lease_duration,
            on_change=self._on_leadership,
            instance=config.instance,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> int:
        """Block until `stop()`; then shut down in order and return the exit code."""
        self.metrics.start_at_zero(self.config)
        self.server.start()
        self.scheduler.start()
        self.triggers.start()
        self.watches.start(self.config)
        self.config_watcher.start()
        if self.elector is None:
            self._on_leadership(True)
        else:
            self.metrics.leader.set(0)
            self.elector.start()
        log.info("syncd running", extra={"specs": len(self.config.secrets), "address": self.config.server.address})
        self.stopping.wait()
        return self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def _shutdown(self) -> int:
        log.info("stopping: finishing in-flight writes")
        self.config_watcher.stop()
        self.watches.stop()
        self.triggers.stop()
        self.scheduler.shutdown(wait=True)
        if self.elector is not None:
            self.elector.stop(release=True)
        self.metrics.leader.set(0)
        self.server.stop()
        log.info("stopped")
        return 0

    def may_write(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    def healthy(self) -> tuple[bool, str]:
        ok = self.scheduler.running and not self.stopping.is_set()
        return ok, "ok" if ok else "scheduler not running"

    def ready(self) -> tuple[bool, str]:
        if not self.may_write():
            return True, "standby: config loaded, another replica holds the lease"
        missing = {s.name for s in self.config.secrets} - self._attempted
        return (not missing), "ok" if not missing else f"first sync not yet attempted: {', '.join(sorted(missing))}"

    # -- syncing -----------------------------------------------------------------------------

    def _lock(self, name: str) -> threading.Lock:
        with self._state_lock:
            return self._locks.setdefault(name, threading.Lock())

    def _spec(self, name: str) -> SecretSpec | None:
        return next((s for s in self.config.secrets if s.name == name), None)

    def schedule_now(self, names: list[str] | None = None) -> None:
        now = _utcnow()
        for spec in self.config.secrets:
            if names is None or spec.name in names:
                self.scheduler.schedule(spec.name, now, partial(self._scheduled_sync, spec.name))

    def _scheduled_sync(self, name: str) -> None:
        spec = self._spec(name)
        if spec is None or not self.may_write() or self.stopping.is_set():
            return
        started = _utcnow()
        with self._lock(name):
            result = self.reconciler.sync(spec, freshness=Freshness.scheduled(started))
        failed = bool(result.source_errors or result.failed_writes)
        failures = self._failures[name] = self._failures.get(name, 0) + 1 if failed else 0
        self._attempted.add(name)
        at = timing.next_run(_utcnow(), self.config.schedule, failures=failures, lifetimes=self._lifetimes(spec))
        if not self.stopping.is_set() and self._spec(name) is not None:
            self.scheduler.schedule(name, at, partial(self._scheduled_sync, name))
        log.debug("next sync of %s at %s", name, at.isoformat())

    def _lifetimes(self, spec: SecretSpec) -> list[tuple[dt.datetime, dt.datetime]]:
        return self.reconciler.fetcher.lifetimes(spec.credentials)

    def _triggered_sync(self, key: Key) -> None:
        name, namespace = key
        spec = self._spec(name)
        if spec is None or not self.may_write() or not self.reconciler.has_credentials(spec):
            return
        with self._lock(name):
            if namespace is None:
                self.reconciler.sync(spec, freshness=Freshness.cached())
            else:
                self.reconciler.sync_namespace(spec, namespace)

    # -- watch events ------------------------------------------------------------------------

    def _rendered(self, spec: str) -> DesiredSecret | None:
        return self.reconciler.rendered(spec)  # the reconciler of the running config

    def _on_event(self, event: WatchEvent) -> None:
        self.triggers.request(*self.router.route(event))

    def _on_relist(self, kind: str) -> None:
        self.triggers.request(*self.router.relisted(kind))

    def _on_leadership(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        log.info("leadership: %s", "leading" if leading else "standing by")
        if leading:
            self.schedule_now()

    # -- reload ------------------------------------------------------------------------------

    def reload(self) -> None:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self.metrics.config_reloads.labels(result="failure").inc()
            log.error("config reload rejected; keeping the running config: %s", exc)
            return
        self.metrics.config_reloads.labels(result="success").inc()
        removed = {s.name for s in self.config.secrets} - {s.name for s in config.secrets}
        if config.server != self.config.server or config.leader_election != self.config.leader_election:
            log.warning("server and leader_election changes take effect at the next restart")
        self.config, self.reconciler = config, self._reconciler(config)
        self.watches.update(config)
        for name in removed:
            self.scheduler.cancel(name)
        self.metrics.forget(removed, {c.name for c in config.credentials})
        if self.may_write():
            self.reconciler.prune_retired(also=removed)
            self.schedule_now()
        log.info("config reloaded", extra={"specs": len(config.secrets), "removed": sorted(removed)})
