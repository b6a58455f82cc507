"""One sync of one secret spec: fetch once -> validate -> render -> plan -> roll out.

The engine's face for the daemon, the CLI and the composition root. It holds the config and
what the last sync of each spec rendered, and hands every other concern to its module: rollout
(the Secrets, one task per namespace), links (ServiceAccounts), retirement (retired specs'
Secrets), report (metrics, the log line, Events). It talks to the cluster and the sources only
through protocols (ports), so that it can be tested with fakes and holds no library imports.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from syncd.config import Config, SecretSpec
from syncd.config.selection import selects
from syncd.core.clock import utcnow
from syncd.core.errors import KubeError, SyncdError
from syncd.core.values import DesiredSecret, FetchedCredential, PlannedChange, SyncResult
from syncd.engine.fetcher import CredentialFetcher, Freshness, Verifier
from syncd.engine.links import AccountLinks
from syncd.engine.metrics import Metrics
from syncd.engine.plan import plan_namespace, plan_secret
from syncd.engine.ports import Cluster, EventSink
from syncd.engine.report import Report
from syncd.engine.retirement import Retirement
from syncd.engine.rollout import Rollout
from syncd.registry.dockerconfig import render
from syncd.registry.login import verify_login
from syncd.sources.base import Source

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        *,
        config: Config,
        sources: Mapping[str, Source[Any]],
        cluster: Cluster,
        metrics: Metrics,
        workers: int = 8,
        clock: Callable[[], dt.datetime] = utcnow,
        events: EventSink | None = None,
        verifier: Verifier = verify_login,
    ) -> None:
        self.config = config
        self.last_desired: dict[str, DesiredSecret] = {}
        self.cluster = cluster
        self.metrics = metrics
        self.clock = clock
        self.fetcher = CredentialFetcher(sources, metrics, clock, verifier)
        self.report = Report(metrics, clock, events)
        # The parts read the config at each call, as the reconciler did: a reload swaps it for all.
        current = self._current_config
        links = AccountLinks(cluster, metrics, current)
        self.rollout = Rollout(
            cluster=cluster, metrics=metrics, links=links, config=current, clock=clock, workers=workers
        )
        self.retirement = Retirement(cluster=cluster, rollout=self.rollout, config=current)

    def _current_config(self) -> Config:
        return self.config

    def reconfigure(self, config: Config, sources: Mapping[str, Source[Any]]) -> None:
        """Sync with a reloaded config from now on. What it did not change stays: the cached
        credentials (no source call) and the content rendered from them (watch-triggered syncs
        go on writing it), so a reload that only moves a spec to other namespaces fetches nothing."""
        self.fetcher.reconfigure(self.config, config, sources)
        specs = {spec.name: spec for spec in config.secrets}
        kept = {
            name: desired
            for name, desired in self.last_desired.items()
            if name in specs and self._renders_the_same(desired, specs[name], config)
        }
        for name in self.last_desired.keys() - kept.keys():
            self.fetcher.unmask_rendered(name)
        self.last_desired = kept
        self.config = config

    def _renders_the_same(self, desired: DesiredSecret, spec: SecretSpec, config: Config) -> bool:
        """Same credentials, still cached, and the same labels, annotations, prune and instance."""
        again = replace(
            desired,
            credentials=tuple(spec.credentials),
            labels=dict(spec.labels),
            annotations=dict(spec.annotations),
            prune=spec.prune,
            instance=config.instance,
        )
        return again == desired and self.has_credentials(spec)

    def rendered(self, spec: str) -> DesiredSecret | None:
        """What the last sync of `spec` rendered; None before its first."""
        return self.last_desired.get(spec)

    def has_credentials(self, spec: SecretSpec) -> bool:
        """Whether a cache-only sync can render this spec (every credential fetched at least once)."""
        return all(self.fetcher.cached(name) is not None for name in spec.credentials)

    def sync_all(self, *, dry_run: bool = False) -> list[SyncResult]:
        """Every spec, then the retired specs' Secrets. Each credential is fetched once."""
        freshness = Freshness.per_run(self.clock())
        results = [self.sync(spec, dry_run=dry_run, freshness=freshness) for spec in self.config.secrets]
        retired = self.prune_retired(dry_run=dry_run)
        return results + ([retired] if retired.outcomes or retired.stopped or retired.account_changes else [])

    def sync(self, spec: SecretSpec, *, freshness: Freshness, dry_run: bool = False) -> SyncResult:
        """One sync of one spec, from credentials as fresh as `freshness` says."""
        started = time.monotonic()
        result = SyncResult(secret=spec.name, dry_run=dry_run)
        try:
            desired, fetched = self._render(spec, freshness)
            plan = self.plan(spec, desired)
            if dry_run:
                self.rollout.preview(spec, plan, result)
            else:
                self.rollout.apply(spec, desired, plan, result)
                if not result.stopped and not result.failed_writes:
                    # Every selected namespace holds these logins now: replaced leases may go.
                    self.fetcher.rolled_out(spec.name, fetched)
        except KubeError as exc:
            result.cluster_errors.append(str(exc))
        except SyncdError as exc:
            result.source_errors.append(str(exc))
        self.report.record(spec.name, result, time.monotonic() - started, vouched=freshness.vouches_for_sources)
        self.report.emit(result)
        return result

    def desired(self, spec: SecretSpec, freshness: Freshness) -> DesiredSecret:
        """Fetch (once per run), validate and render; any failure here means nothing is written."""
        return self._render(spec, freshness)[0]

    def _render(self, spec: SecretSpec, freshness: Freshness) -> tuple[DesiredSecret, list[FetchedCredential]]:
        """What `desired` renders, and the fetched credentials it rendered (with their leases)."""
        fetched = self.fetcher.fetch_all(self.config, spec.credentials, freshness)
        rendered = render(entry for credential in fetched for entry in credential.entries)
        desired = DesiredSecret(
            name=spec.name,
            content=rendered.content,
            content_hash=rendered.content_hash,
            credentials=tuple(spec.credentials),
            labels=dict(spec.labels),
            annotations=dict(spec.annotations),
            prune=spec.prune,
            instance=self.config.instance,
        )
        self.fetcher.mask_rendered(spec.name, fetched)
        self.last_desired[spec.name] = desired
        return desired, fetched

    def plan(self, spec: SecretSpec, desired: DesiredSecret) -> list[PlannedChange]:
        selected = self.cluster.select_namespaces(spec.namespaces)
        listed = self.cluster.managed_secrets(spec.name)
        labelled = {s.namespace: s for s in listed if s.spec == spec.name and s.name == spec.name}
        return plan_secret(desired, selected, labelled)

    def sync_namespace(self, spec: SecretSpec, namespace: str) -> SyncResult | None:
        """A watch-triggered sync of one namespace from the last rendered content: a handful of
        requests whatever the number of namespaces, and no source call. None when there is no
        rendered content yet or the namespace is not (or no longer) selected. The same rollout as
        a whole spec's, of a plan of one namespace."""
        desired = self.last_desired.get(spec.name)
        info = self.cluster.read_namespace(namespace) if desired is not None else None
        if desired is None or info is None or not selects(spec.namespaces, info):
            return None
        result = SyncResult(secret=spec.name)
        try:
            change = plan_namespace(desired, namespace, self.cluster.read_secret(namespace, spec.name))
            self.rollout.apply(spec, desired, [change], result, within=namespace)
        except KubeError as exc:
            result.cluster_errors.append(str(exc))
        self.report.emit(result)
        action = result.outcomes[0].change.action.value if result.outcomes else "none"
        log.info("namespace sync finished", extra={"secret": spec.name, "namespace": namespace, "action": action})
        return result

    def prune_retired(self, *, dry_run: bool = False, also: Iterable[str] = ()) -> SyncResult:
        """The Secrets of retired specs (and of `also`: specs a reload just removed); see retirement."""
        return self.retirement.prune(dry_run=dry_run, also=also)
