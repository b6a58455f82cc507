"""One sync of one secret spec: fetch once -> validate -> render -> plan -> apply.

Talks to the cluster and the sources only through the protocols below, so that it can be
tested with fakes and holds no library imports.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from syncd.config import Config, Namespaces, SecretSpec
from syncd.errors import KubeError, SyncdError
from syncd.fetcher import CredentialFetcher, Verifier
from syncd.metrics import Metrics
from syncd.model import (
    Action,
    ChangeOutcome,
    DesiredSecret,
    ExistingSecret,
    PlannedChange,
    ServiceAccountRef,
    SyncResult,
)
from syncd.plan import plan_namespace, plan_orphans, plan_secret
from syncd.render import render
from syncd.selection import NamespaceInfo, selects
from syncd.sources.base import Source
from syncd.verify import verify_login

log = logging.getLogger(__name__)


class WriteResultLike(Protocol):
    @property
    def action(self) -> Action: ...
    @property
    def changed(self) -> bool: ...


class Cluster(Protocol):
    """What the reconciler needs of Kubernetes (implemented by syncd.kube.cluster.KubeCluster)."""

    def select_namespaces(self, selection: Namespaces) -> list[str]: ...
    def managed_secrets(self, spec: str | None = None) -> list[ExistingSecret]: ...
    def read_secret(self, namespace: str, name: str) -> ExistingSecret | None: ...
    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResultLike: ...
    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResultLike: ...
    def delete(self, namespace: str, name: str, resource_version: str) -> None: ...
    def service_accounts(self, namespace: str | None = None) -> list[ServiceAccountRef]: ...
    def read_namespace(self, name: str) -> NamespaceInfo | None: ...
    def add_pull_secret(self, namespace: str, service_account: str, secret: str) -> bool: ...
    def remove_pull_secret(self, namespace: str, service_account: str, secret: str) -> bool: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventSink(Protocol):
    def emit(self, events: list[tuple[str, str, str, str]], now: dt.datetime) -> int: ...


class Reconciler:
    def __init__(
        self,
        *,
        config: Config,
        sources: Mapping[str, Source],
        cluster: Cluster,
        metrics: Metrics,
        workers: int = 8,
        clock: Callable[[], dt.datetime] = _utcnow,
        events: EventSink | None = None,
        verifier: Verifier = verify_login,
    ) -> None:
        self.config = config
        self.events = events
        self.last_desired: dict[str, DesiredSecret] = {}
        self.cluster = cluster
        self.metrics = metrics
        self.workers = workers
        self.clock = clock
        self.fetcher = CredentialFetcher(sources, metrics, clock, verifier)

    def has_credentials(self, spec: SecretSpec) -> bool:
        """Whether a cache-only sync can render this spec (every credential fetched at least once)."""
        return all(self.fetcher.cached(name) is not None for name in spec.credentials)

    def sync_all(self, *, dry_run: bool = False) -> list[SyncResult]:
        """Every spec, then the orphans of removed specs. Each credential is fetched once, and the
        managed Secrets are listed once for all of them (specs only ever touch their own Secrets)."""
        started = self.clock()
        managed = self._all_managed()
        results = [
            self.sync(spec, dry_run=dry_run, fresh_after=started, managed=managed) for spec in self.config.secrets
        ]
        orphans = self.prune_orphans(dry_run=dry_run, managed=managed)
        return results + ([orphans] if orphans.outcomes else [])

    def _all_managed(self) -> list[ExistingSecret] | None:
        """None if the LIST fails: each spec then lists its own, and reports a failure as before."""
        try:
            return self.cluster.managed_secrets()
        except KubeError:
            return None

    def sync(
        self,
        spec: SecretSpec,
        *,
        dry_run: bool = False,
        fresh_after: dt.datetime | None,
        failed_after: dt.datetime | None = None,
        managed: list[ExistingSecret] | None = None,
    ) -> SyncResult:
        """One sync of one spec. `fresh_after=None`: from cached credentials only (watch-triggered).

        `managed`: every managed Secret, already listed by `sync_all`; None lists this spec's.
        """
        started = time.monotonic()
        result = SyncResult(secret=spec.name, dry_run=dry_run)
        try:
            desired = self.desired(spec, fresh_after=fresh_after, failed_after=failed_after)
            plan = self.plan(spec, desired, managed)
            result.outcomes = self.apply(spec, desired, plan, dry_run=dry_run)
            result.service_account_errors = self.service_accounts(spec, result.outcomes, dry_run=dry_run)
        except SyncdError as exc:
            result.source_errors.append(str(exc))
        self.record(spec.name, result, time.monotonic() - started)
        if self.events is not None and not dry_run:
            self.events.emit(_events(result), self.clock())
        return result

    def desired(
        self, spec: SecretSpec, *, fresh_after: dt.datetime | None, failed_after: dt.datetime | None = None
    ) -> DesiredSecret:
        """Fetch (once per run), validate and render; any failure here means nothing is written."""
        fetched = [
            self.fetcher.fetch(self.config, name, fresh_after=fresh_after, failed_after=failed_after)
            for name in spec.credentials
        ]
        rendered = render(entry for credential in fetched for entry in credential.entries)
        desired = DesiredSecret(
            name=spec.name,
            content=rendered.content,
            content_hash=rendered.content_hash,
            credentials=tuple(spec.credentials),
            labels=dict(spec.labels),
            annotations=dict(spec.annotations),
            prune=spec.prune,
        )
        self.last_desired[spec.name] = desired
        return desired

    def plan(
        self, spec: SecretSpec, desired: DesiredSecret, managed: list[ExistingSecret] | None = None
    ) -> list[PlannedChange]:
        selected = self.cluster.select_namespaces(spec.namespaces)
        listed = managed if managed is not None else self.cluster.managed_secrets(spec.name)
        ours = {s.namespace: s for s in listed if s.spec == spec.name and s.name == spec.name}
        return plan_secret(desired, selected, ours)

    def apply(
        self, spec: SecretSpec, desired: DesiredSecret, plan: list[PlannedChange], *, dry_run: bool
    ) -> list[ChangeOutcome]:
        step = self._preview if dry_run else self._write
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="syncd-write") as pool:
            return list(pool.map(lambda change: step(spec, desired, change), plan))

    def _preview(self, spec: SecretSpec, _desired: DesiredSecret, change: PlannedChange) -> ChangeOutcome:
        """Dry run: reads only. A planned create is checked for a foreign Secret in the way."""
        if change.action is not Action.CREATE:
            return ChangeOutcome(change)
        try:
            existing = self.cluster.read_secret(change.namespace, change.secret)
        except KubeError as exc:
            return ChangeOutcome(change, error=str(exc))
        if existing is not None and not existing.managed:
            action = Action.ADOPT if spec.on_conflict == "adopt" else Action.CONFLICT
            return ChangeOutcome(_with(change, action, "a Secret of that name exists and syncd does not manage it"))
        return ChangeOutcome(change)

    def _write(self, spec: SecretSpec, desired: DesiredSecret, change: PlannedChange) -> ChangeOutcome:
        operation = {Action.CREATE: "create", Action.UPDATE: "update", Action.PRUNE: "delete"}.get(change.action)
        if operation is None:
            return ChangeOutcome(change)
        try:
            final = self._do(spec, desired, change)
        except KubeError as exc:
            self.metrics.secret_writes.labels(secret=spec.name, operation=operation, result="failure").inc()
            log.warning("write failed", extra={"secret": spec.name, "namespace": change.namespace, "error": str(exc)})
            return ChangeOutcome(change, error=str(exc))
        if final.action is not Action.CONFLICT and final.changed:
            real_operation = "create" if final.action is Action.CREATE else operation
            self.metrics.secret_writes.labels(secret=spec.name, operation=real_operation, result="success").inc()
        return ChangeOutcome(_with(change, final.action, _reason(final.action, change.reason)))

    def _do(self, spec: SecretSpec, desired: DesiredSecret, change: PlannedChange) -> WriteResultLike:
        adopt, now = spec.on_conflict == "adopt", self.clock()
        if change.action is Action.CREATE:
            return self.cluster.create(change.namespace, desired, adopt=adopt, now=now)
        if change.action is Action.UPDATE:
            return self.cluster.update(change.namespace, desired, change.resource_version or "", adopt=adopt, now=now)
        self.cluster.delete(change.namespace, change.secret, change.resource_version or "")
        return _Done(Action.PRUNE, changed=True)

    def sync_namespace(self, spec: SecretSpec, namespace: str) -> SyncResult | None:
        """A watch-triggered sync of one namespace from the last rendered content: a handful of
        requests whatever the number of namespaces, and no source call. None when there is no
        rendered content yet or the namespace is not (or no longer) selected."""
        desired = self.last_desired.get(spec.name)
        info = self.cluster.read_namespace(namespace) if desired is not None else None
        if desired is None or info is None or not selects(spec.namespaces, info):
            return None
        result = SyncResult(secret=spec.name)
        try:
            change = plan_namespace(desired, namespace, self.cluster.read_secret(namespace, spec.name))
            result.outcomes = [self._write(spec, desired, change)]
            result.service_account_errors = self.service_accounts(
                spec, result.outcomes, dry_run=False, within=namespace
            )
        except KubeError as exc:
            result.source_errors.append(str(exc))
        if self.events is not None:
            self.events.emit(_events(result), self.clock())
        action = result.outcomes[0].change.action.value if result.outcomes else "none"
        log.info("namespace sync finished", extra={"secret": spec.name, "namespace": namespace, "action": action})
        return result

    def service_accounts(
        self, spec: SecretSpec, outcomes: list[ChangeOutcome], *, dry_run: bool, within: str | None = None
    ) -> list[str]:
        """Add the Secret to the listed ServiceAccounts where it now exists; drop it where it was pruned."""
        present = {o.change.namespace for o in outcomes if o.ok and o.change.action in _PRESENT}
        pruned = {o.change.namespace for o in outcomes if o.ok and o.change.action is Action.PRUNE}
        if dry_run or not ((present and spec.service_accounts) or pruned):
            return []
        touched = present | pruned  # once, not per ServiceAccount: that was quadratic (3.4 s a sync at 10,000)
        edits = [
            (sa, sa.name in _wanted(spec, sa, present))
            for sa in self.cluster.service_accounts(within)
            if sa.namespace in touched
        ]
        return [e for e in (self._edit_sa(spec.name, sa, add) for sa, add in edits) if e]

    def _edit_sa(self, secret: str, sa: ServiceAccountRef, add: bool) -> str | None:
        if (secret in sa.pull_secrets) == add:
            return None
        labels = {"secret": secret, "operation": "patch_service_account"}
        try:
            edit = self.cluster.add_pull_secret if add else self.cluster.remove_pull_secret
            edit(sa.namespace, sa.name, secret)
        except KubeError as exc:
            self.metrics.secret_writes.labels(**labels, result="failure").inc()
            log.warning("ServiceAccount patch failed", extra={"secret": secret, "error": str(exc)})
            return str(exc)
        self.metrics.secret_writes.labels(**labels, result="success").inc()
        return None

    def prune_orphans(self, *, dry_run: bool = False, managed: list[ExistingSecret] | None = None) -> SyncResult:
        """Managed Secrets whose spec is gone from the config (and which asked to be pruned)."""
        result = SyncResult(secret="(removed specs)", dry_run=dry_run)  # noqa: S106 - a label, not a password
        try:
            listed = managed if managed is not None else self.cluster.managed_secrets()
            plan = plan_orphans(listed, [s.name for s in self.config.secrets])
        except KubeError as exc:
            result.source_errors.append(str(exc))
            return result
        for change in plan:
            result.outcomes.append(ChangeOutcome(change) if dry_run else self._delete_orphan(change))
        return result

    def _delete_orphan(self, change: PlannedChange) -> ChangeOutcome:
        try:
            self.cluster.delete(change.namespace, change.secret, change.resource_version or "")
        except KubeError as exc:
            return ChangeOutcome(change, error=str(exc))
        return ChangeOutcome(change)

    def record(self, secret: str, result: SyncResult, seconds: float) -> None:
        if result.dry_run:
            return
        self.metrics.sync_runs.labels(secret=secret, result=result.result).inc()
        self.metrics.sync_duration.labels(secret=secret).observe(seconds)
        if not result.source_errors and not result.failed_writes:
            self.metrics.last_success.labels(secret=secret).set(self.clock().timestamp())
        if not result.source_errors:
            for state, count in _namespace_states(result).items():
                self.metrics.namespaces.labels(secret=secret, state=state).set(count)
        for error in result.source_errors:
            log.error("sync failed: %s", error, extra={"secret": secret})
        log.info(
            "sync finished",
            extra={"secret": secret, "result": result.result, "duration_seconds": round(seconds, 3), **_counts(result)},
        )


_PRESENT = {Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.ADOPT}


class _Done:
    def __init__(self, action: Action, changed: bool) -> None:
        self.action = action
        self.changed = changed


def _with(change: PlannedChange, action: Action, reason: str) -> PlannedChange:
    return PlannedChange(change.namespace, change.secret, action, reason, change.resource_version)


def _reason(action: Action, planned_reason: str) -> str:
    return {
        Action.CONFLICT: "a Secret of that name exists and syncd does not manage it",
        Action.ADOPT: "adopted an existing Secret",
    }.get(action, planned_reason)


def _wanted(spec: SecretSpec, sa: ServiceAccountRef, present: set[str]) -> set[str]:
    if sa.namespace not in present:
        return set()
    return {sa.name} if "*" in spec.service_accounts else set(spec.service_accounts)


def _namespace_states(result: SyncResult) -> dict[str, int]:
    states = {"in_sync": 0, "failed": 0, "conflict": 0}
    for outcome in result.outcomes:
        if outcome.change.action is Action.PRUNE:
            continue
        state = "failed" if not outcome.ok else "conflict" if outcome.change.action is Action.CONFLICT else "in_sync"
        states[state] += 1
    return states


def _events(result: SyncResult) -> list[tuple[str, str, str, str]]:
    """(namespace, secret, reason, message) for changes and trouble; names and counts only."""
    found = []
    for o in result.outcomes:
        namespace, secret = o.change.namespace, o.change.secret
        if not o.ok:
            found.append((namespace, secret, "SyncFailed", f"syncd could not write {secret}: {o.error}"))
        elif o.change.action is Action.CONFLICT:
            found.append((namespace, secret, "Conflict", f"{secret} exists and is not managed by syncd; left alone"))
        elif o.change.action in (Action.CREATE, Action.UPDATE, Action.ADOPT):
            done = {Action.CREATE: "created", Action.UPDATE: "updated", Action.ADOPT: "adopted"}[o.change.action]
            found.append((namespace, secret, "Synced", f"syncd {done} {secret}"))
    return found


def _counts(result: SyncResult) -> dict[str, int]:
    counts = {action.value: result.count(action) for action in Action}
    counts["failed"] = len(result.failed_writes)
    return counts
