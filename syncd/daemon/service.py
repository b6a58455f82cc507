"""`syncd run`: starts the parts, answers the probes, follows leadership, stops them in order.

The parts, each with one job: SpecRuns (syncd.daemon.runs: scheduled and triggered syncs, timed by
syncd.engine.timing.Cadence), WatchRouter and WatchSet (syncd.daemon.routing: typed watch events to re-syncs),
Reloader (syncd.daemon.reload: swapping a changed config in). Everything that talks to the outside
comes in through `Ports`, built by the composition root (syncd.app), so the daemon runs
in-process on fakes as well.

Threads: the scheduler's pool runs one job per secret spec; the trigger queue runs
watch-requested re-syncs; watch loops, the config watcher, the elector and the HTTP server
each have their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from syncd.config import Config, SecretSpec
from syncd.core.values import SyncResult
from syncd.core.watch_events import KubeletEvent, WatchEvent
from syncd.daemon.admission import AdmissionService, ConflictLedger, Stores
from syncd.daemon.pullsyncs import ConditionEvents, PullSyncStore, StatusPublisher
from syncd.daemon.reload import ConfigWatcher, Reloader
from syncd.daemon.repair import RepairWorker, StoreKnowledge
from syncd.daemon.routing import Loop, WatchRouter, WatchSet
from syncd.daemon.runs import SpecRuns
from syncd.daemon.scheduler import Scheduler
from syncd.daemon.server import HttpServer
from syncd.daemon.server.auth import AccessReviewer
from syncd.daemon.server.serve import Limits
from syncd.daemon.server.tls import TlsFiles
from syncd.daemon.server.webhook import WebhookServer
from syncd.daemon.triggers import TriggerQueue
from syncd.daemon.webhook_tls import TlsKeeper, WebhookStore
from syncd.engine.metrics import Metrics
from syncd.engine.pull_failures import PullFailure, PullFailureCounter
from syncd.engine.reconciler import Reconciler
from syncd.engine.repair import OwnerEvents, Pods, Repairer, TokenBucket
from syncd.engine.timing import Cadence, Lifetime
from syncd.sources.base import Source

log = logging.getLogger(__name__)
OnEvent = Callable[[WatchEvent], None]
OnRelist = Callable[[str], None]


class Elector(Protocol):
    """What the daemon needs of leader election (syncd.kube.elector.LeaderElector)."""

    def start(self) -> None: ...
    def stop(self, *, release: bool = True) -> None: ...
    def is_leader(self) -> bool: ...


@dataclass(frozen=True)
class Ports:
    """What `syncd run` gets from the composition root: everything that reaches the outside."""

    reconciler: Reconciler
    metrics: Metrics
    registry: CollectorRegistry
    lifetimes: Callable[[Iterable[str]], list[Lifetime]]  # of the cached credentials
    sources: Callable[[Config], Mapping[str, Source[Any]]]  # for a reloaded config
    watch_loops: Callable[[Config, OnEvent, OnRelist], dict[str, Loop]]
    elector: Callable[[Config, Callable[[bool], None]], Elector | None]  # None: election off
    access_reviews: AccessReviewer | None = None  # for `server.metrics_auth: kubernetes`
    status_objects: PullSyncStore | None = None  # PullSecretSync objects; None: not published
    condition_events: ConditionEvents | None = None
    crd_missing: type[Exception] = LookupError  # what status_objects raises when the CRD is absent
    identity: str = ""  # this replica, as the leader election knows it
    stores: Stores | None = None  # the watch stores, for the admission webhook
    webhook_objects: WebhookStore | None = None  # its TLS Secret and webhook configuration
    pods: Pods | None = None  # repair_pods: Pending Pods, read and evicted
    owner_events: OwnerEvents | None = None  # repair_pods: the Event on an evicted Pod's owner


class Daemon:
    def __init__(self, config_path: Path, config: Config, ports: Ports) -> None:
        self.metrics = ports.metrics
        self.reconciler = ports.reconciler
        self.stopping = threading.Event()
        self.scheduler = Scheduler(workers=max(4, len(config.secrets) + 2))
        self.status = self._status_publisher(ports)
        self.conflicts = ConflictLedger()
        self.runs = SpecRuns(
            ports.reconciler,
            self.scheduler,
            Cadence(ports.lifetimes),
            config=lambda: self.config,
            may_write=self.may_write,
            stopping=self.stopping,
            on_result=self._on_result,
        )
        self.triggers = TriggerQueue(self.runs.run_triggered)
        self.router = WatchRouter(lambda: self.config, ports.reconciler.rendered)
        self.pull_failures = PullFailureCounter(
            lambda: self.config,
            ports.reconciler.cluster.read_namespace,
            self._record_pull_failure,
            counting=self.may_write,  # every replica watches; one count per failure keeps `sum` right
        )
        self.repair = self._repair_worker(ports)
        self._sweep_due = False  # repair_pods: sweep once the specs have been synced (leading, reloaded)
        self.watches = WatchSet(lambda c: ports.watch_loops(c, self._on_event, self._on_relist))
        self.reloader = Reloader(
            config_path,
            config,
            reconciler=ports.reconciler,
            sources=ports.sources,
            watches=self.watches,
            runs=self.runs,
            metrics=self.metrics,
            may_write=self.may_write,
            swapped=self._swapped,
        )
        self.config_watcher = ConfigWatcher(config_path, self.reloader.reload)
        self.elector = ports.elector(config, self._on_leadership)
        self.server = HttpServer.from_config(
            config.server, ports.registry, healthy=self.healthy, ready=self.ready, reviewer=ports.access_reviews
        )
        self.webhook: WebhookServer | None = None
        self.tls_keeper: TlsKeeper | None = None
        self._webhook_lock = threading.Lock()
        if config.admission.enabled:
            self._admission(config, ports)

    def _admission(self, config: Config, ports: Ports) -> None:
        """The webhook: served at once with files of its own (`admission.tls`), else once the keeper
        has the shared Secret's pair on disk."""
        if ports.stores is None:
            raise ValueError("admission.enabled needs the watch stores")
        self.admission = AdmissionService(lambda: self.config, ports.stores, self.conflicts, self.metrics)
        tls = config.admission.tls
        if tls is not None:
            self.webhook = self._webhook_server(TlsFiles(tls.cert_file, tls.key_file))
            return
        if ports.webhook_objects is None:
            raise ValueError("admission.enabled without admission.tls needs the webhook's objects")
        self.tls_keeper = TlsKeeper(
            ports.webhook_objects, config, is_leader=self.may_write, on_files=self._serve_webhook
        )

    def _webhook_server(self, files: TlsFiles) -> WebhookServer:
        config = self.config
        limits = Limits(
            max_connections=config.server.max_connections,
            read_timeout=config.server.read_timeout.total_seconds(),
            max_body_bytes=config.admission.max_body_bytes,
        )
        return WebhookServer(config.admission.address, self.admission.mutate, tls=files, limits=limits)

    def _serve_webhook(self, files: TlsFiles) -> None:
        """The keeper's first pair is on disk: serve (from the keeper's thread)."""
        with self._webhook_lock:
            if self.stopping.is_set() or self.webhook is not None:
                return
            self.webhook = self._webhook_server(files)
            self.webhook.start()
        log.info("admission webhook serving", extra={"address": self.config.admission.address})

    def _repair_worker(self, ports: Ports) -> RepairWorker | None:
        """Built whatever the config says (a reload may turn repair_pods on); idle while it is off."""
        if ports.pods is None or ports.stores is None:
            return None
        repairer = Repairer(
            config=lambda: self.config,
            pods=ports.pods,
            metrics=self.metrics,
            events=ports.owner_events,
            bucket=TokenBucket(),
            on_repaired=self._repaired,
        )
        known = StoreKnowledge(
            ports.stores,
            config=lambda: self.config,
            rendered=ports.reconciler.rendered,
            conflict=lambda secret, namespace: (secret, namespace) in self.conflicts,
        )
        return RepairWorker(repairer, ports.pods, known, config=lambda: self.config, may_write=self.may_write)

    def _repaired(self, secret: str) -> None:
        if self.status is not None:
            self.status.repaired(secret)

    def _swapped(self) -> None:
        """A new config is in: its specs are synced at once, then the Pending Pods swept again."""
        self._sweep_due = True
        if self.status is not None:
            self.status.reconcile_objects()

    def _on_result(self, spec: SecretSpec, result: SyncResult, namespace: str | None, fetched: bool) -> None:
        self.conflicts.record(spec, result, namespace)
        if self.status is not None:
            self.status.record(spec, result, namespace, fetched=fetched)
        if namespace is None and self._sweep_due and not self.runs.unattempted() and self.repair is not None:
            self._sweep_due = False
            if self.config.repair_pods:
                self.repair.request_sweep()

    def _status_publisher(self, ports: Ports) -> StatusPublisher | None:
        if ports.status_objects is None or ports.condition_events is None:
            return None
        return StatusPublisher(
            ports.status_objects,
            config=lambda: self.config,
            credentials=ports.reconciler.fetcher,
            leader=ports.identity,
            may_write=self.may_write,
            events=ports.condition_events,
            counter=ports.metrics,
            crd_missing=ports.crd_missing,
        )

    @property
    def config(self) -> Config:
        """The running config: the one last loaded, or reloaded, successfully."""
        return self.reloader.config

    def run(self) -> int:
        """Block until `stop()`; then shut down in order and return the exit code."""
        self.metrics.start_at_zero(self.config)
        self.server.start()
        if self.webhook is not None:
            self.webhook.start()
        if self.tls_keeper is not None:
            self.tls_keeper.start()
        self.scheduler.start()
        self.triggers.start()
        if self.repair is not None:
            self.repair.start()
        self.watches.start(self.config)
        self.config_watcher.start()
        if self.status is not None:
            self.status.start()
        if self.elector is None:
            self._on_leadership(True)
        else:
            self.metrics.set_leader(False)
            self.elector.start()
        log.info("syncd running", extra={"specs": len(self.config.secrets), "address": self.config.server.address})
        # Woken every second: a SIGTERM whose C-level handler ran on another thread is only acted
        # on when the main thread next runs Python code, which a wait without timeout may never do.
        while not self.stopping.wait(timeout=1.0):
            pass
        return self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def _shutdown(self) -> int:
        log.info("stopping: finishing in-flight writes")
        self.config_watcher.stop()
        self.watches.stop()
        self.triggers.stop()
        if self.repair is not None:
            self.repair.stop()
        self.scheduler.shutdown(wait=True)
        if self.status is not None:
            self.status.stop()
        if self.elector is not None:
            self.elector.stop(release=True)
        self.metrics.set_leader(False)
        self._stop_webhook()
        self.server.stop()
        log.info("stopped")
        return 0

    def _stop_webhook(self) -> None:
        if self.tls_keeper is not None:
            self.tls_keeper.stop()
        with self._webhook_lock:
            if self.webhook is not None:
                self.webhook.stop()

    def may_write(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    def healthy(self) -> tuple[bool, str]:
        ok = self.scheduler.running and not self.stopping.is_set()
        return ok, "ok" if ok else "scheduler not running"

    def ready(self) -> tuple[bool, str]:
        if not self.may_write():
            return True, "standby: config loaded, another replica holds the lease"
        missing = self.runs.unattempted()
        return (not missing), "ok" if not missing else f"first sync not yet attempted: {', '.join(sorted(missing))}"

    def _on_event(self, event: WatchEvent) -> None:
        if isinstance(event, KubeletEvent):
            # The watch runs for either; each counts or repairs only while its key is on.
            if self.config.pull_failures:
                self.pull_failures.observe(event)
            if self.repair is not None:
                self.repair.on_event(event)
            return
        self.triggers.request(*self.router.route(event))

    def _record_pull_failure(self, failure: PullFailure, times: int) -> None:
        self.metrics.record_pull_failure(failure.secret, failure.registry, failure.reason, times)
        if self.status is not None:
            self.status.pull_failed(failure.secret, times)
        log.warning(
            "image pulls failed: %s",
            failure.reason,
            extra={"secret": failure.secret, "registry": failure.registry, "times": times},
        )

    def _on_relist(self, kind: str) -> None:
        self.triggers.request(*self.router.relisted(kind))

    def _on_leadership(self, leading: bool) -> None:
        self.metrics.set_leader(leading)
        log.info("leadership: %s", "leading" if leading else "standing by")
        if leading:
            self._sweep_due = True
            # Off the elector's thread: a long prune must not delay lease renewals.
            threading.Thread(target=self._prune_retired, name="syncd-prune-retired", daemon=True).start()
            self.runs.schedule_now()
            if self.tls_keeper is not None:
                self.tls_keeper.leading()
            if self.status is not None:
                self.status.reconcile_objects()
        elif self.status is not None:
            self.status.lost_leadership()

    def _prune_retired(self) -> None:
        """`retired_secrets` at start (and on taking the lease), as `syncd once` prunes them."""
        if not self.config.retired_secrets or not self.may_write():
            return
        result = self.reconciler.prune_retired()
        for error in result.errors:
            log.error("pruning retired secret specs: %s", error)
        log.info("retired secret specs pruned", extra={"result": result.result, "pruned": len(result.outcomes)})
