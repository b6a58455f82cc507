"""One sync of one secret spec: fetch once -> validate -> render -> plan -> apply.

Talks to the cluster and the sources only through the protocols below, so that it can be
tested with fakes and holds no library imports.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from syncd.config import Config, Namespaces, SecretSpec
from syncd.config.selection import selects
from syncd.core.clock import utcnow
from syncd.core.errors import KubeError, SyncdError
from syncd.core.values import (
    AccountChange,
    Action,
    ChangeOutcome,
    DesiredSecret,
    EventNote,
    EventReason,
    ExistingSecret,
    NamespaceInfo,
    NamespaceState,
    Ownership,
    PlannedChange,
    ServiceAccountRef,
    SyncResult,
    WriteOperation,
    WriteResult,
)
from syncd.engine.fetcher import CredentialFetcher, Freshness, Verifier
from syncd.engine.metrics import Metrics
from syncd.engine.plan import OTHER_INSTANCE_REASON, plan_accounts, plan_namespace, plan_retired, plan_secret
from syncd.registry.dockerconfig import render
from syncd.registry.login import verify_login
from syncd.sources.base import Source

log = logging.getLogger(__name__)


class Cluster(Protocol):
    """What the reconciler needs of Kubernetes (implemented by syncd.kube.cluster.KubeCluster)."""

    def select_namespaces(self, selection: Namespaces) -> list[str]: ...
    def managed_secrets(self, spec: str) -> list[ExistingSecret]: ...
    def read_secret(self, namespace: str, name: str) -> ExistingSecret | None: ...
    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult: ...
    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResult: ...
    def delete(self, namespace: str, name: str, resource_version: str) -> None: ...
    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]: ...
    def read_namespace(self, name: str) -> NamespaceInfo | None: ...
    def add_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool: ...
    def remove_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool: ...


class EventSink(Protocol):
    def emit(self, events: list[EventNote], now: dt.datetime) -> int: ...


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
        self.events = events
        self.last_desired: dict[str, DesiredSecret] = {}
        self.cluster = cluster
        self.metrics = metrics
        self.workers = workers
        self.clock = clock
        self.fetcher = CredentialFetcher(sources, metrics, clock, verifier)

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
        return again == desired and all(self.fetcher.cached(name) is not None for name in spec.credentials)

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
        return results + ([retired] if retired.outcomes or retired.source_errors or retired.account_changes else [])

    def sync(self, spec: SecretSpec, *, freshness: Freshness, dry_run: bool = False) -> SyncResult:
        """One sync of one spec, from credentials as fresh as `freshness` says."""
        started = time.monotonic()
        result = SyncResult(secret=spec.name, dry_run=dry_run)
        try:
            desired = self.desired(spec, freshness)
            plan = self.plan(spec, desired)
            if dry_run:
                result.outcomes = self.preview(spec, plan)
                self.link_accounts(spec, result, dry_run=True)
            else:
                self.apply(spec, desired, plan, result)
        except SyncdError as exc:
            result.source_errors.append(str(exc))
        self.record(spec.name, result, time.monotonic() - started, vouched=freshness.vouches_for_sources)
        if self.events is not None and not dry_run:
            self.events.emit(_events(result), self.clock())
        return result

    def desired(self, spec: SecretSpec, freshness: Freshness) -> DesiredSecret:
        """Fetch (once per run), validate and render; any failure here means nothing is written."""
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
        return desired

    def plan(self, spec: SecretSpec, desired: DesiredSecret) -> list[PlannedChange]:
        selected = self.cluster.select_namespaces(spec.namespaces)
        listed = self.cluster.managed_secrets(spec.name)
        labelled = {s.namespace: s for s in listed if s.spec == spec.name and s.name == spec.name}
        return plan_secret(desired, selected, labelled)

    def preview(self, spec: SecretSpec, plan: list[PlannedChange]) -> list[ChangeOutcome]:
        """Dry run: what each planned change would do, from reads only."""
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="syncd-read") as pool:
            return list(pool.map(lambda change: self._preview(spec, change), plan))

    def apply(self, spec: SecretSpec, desired: DesiredSecret, plan: list[PlannedChange], result: SyncResult) -> None:
        """The writes, one task per namespace on one pool: its Secret, then, once that is there and
        ours, its ServiceAccounts. A first rollout's patches so start as their Secrets land, not
        after the last one (two waves left the pool idle between them)."""
        accounts = self._accounts_to_edit(spec, plan, result)
        known = {(a.namespace, a.name): a for a in accounts}
        in_namespace: dict[str, list[ServiceAccountRef]] = {}
        for account in accounts:
            in_namespace.setdefault(account.namespace, []).append(account)

        def roll_out(change: PlannedChange) -> tuple[ChangeOutcome, list[AccountChange]]:
            outcome = self._write(spec, desired, change)
            return outcome, self._link_namespace(spec, outcome, in_namespace.get(change.namespace, []), known)

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="syncd-write") as pool:
            done = list(pool.map(roll_out, plan))
        result.outcomes = [outcome for outcome, _ in done]
        listed = {key: index for index, key in enumerate(known)}
        edits = sorted((e for _, edits in done for e in edits), key=lambda e: listed[(e.namespace, e.service_account)])
        result.account_changes = edits
        result.service_account_errors += [e.error for e in edits if e.error]

    def _accounts_to_edit(
        self, spec: SecretSpec, plan: list[PlannedChange], result: SyncResult
    ) -> list[ServiceAccountRef]:
        """The ServiceAccounts this plan may edit, listed before the writes; none when no edit is
        possible (nothing to link, nothing pruned), as `link_accounts` decides after them."""
        visible = self.config.service_account_names()  # what RBAC grants: None = every ServiceAccount
        may_link = bool(spec.service_accounts) and any(c.action in _PRESENT for c in plan)
        if visible == [] or not (may_link or any(c.action is Action.PRUNE for c in plan)):
            return []
        try:
            return self.cluster.service_accounts(visible)
        except KubeError as exc:
            result.service_account_errors.append(str(exc))
            return []

    def _link_namespace(
        self,
        spec: SecretSpec,
        outcome: ChangeOutcome,
        accounts: list[ServiceAccountRef],
        known: Mapping[tuple[str, str], ServiceAccountRef],
    ) -> list[AccountChange]:
        """`link_accounts` for the one namespace of `outcome`: a Secret that failed to write, or
        that is not ours (a conflict), is never linked."""
        action, namespace = outcome.change.action, outcome.change.namespace
        if not accounts or not outcome.ok or action not in _PRESENT | {Action.PRUNE}:
            return []
        present = {namespace} if action in _PRESENT else set()
        pruned = {namespace} if action is Action.PRUNE else set()
        planned = plan_accounts(
            spec.name,
            instance=self.config.instance,
            wanted=spec.service_accounts,
            present=present,
            pruned=pruned,
            accounts=accounts,
        )
        return [self._edit_account(change, known) for change in planned]

    def _preview(self, spec: SecretSpec, change: PlannedChange) -> ChangeOutcome:
        """Dry run: reads only. A planned create is checked for a foreign Secret in the way."""
        if change.action is not Action.CREATE:
            return ChangeOutcome(change)
        try:
            existing = self.cluster.read_secret(change.namespace, change.secret)
        except KubeError as exc:
            return ChangeOutcome(change, error=str(exc))
        if existing is not None and existing.ownership(self.config.instance) is Ownership.OTHER_INSTANCE:
            return ChangeOutcome(_with(change, Action.CONFLICT, OTHER_INSTANCE_REASON.format(existing.instance)))
        if existing is not None and not existing.managed:
            action = Action.ADOPT if spec.on_conflict == "adopt" else Action.CONFLICT
            return ChangeOutcome(_with(change, action, _reason(action, change.reason)))
        return ChangeOutcome(change)

    def _write(self, spec: SecretSpec, desired: DesiredSecret, change: PlannedChange) -> ChangeOutcome:
        operation = _OPERATIONS.get(change.action)
        if operation is None:
            return ChangeOutcome(change)
        try:
            final = self._do(spec, desired, change)
        except KubeError as exc:
            self.metrics.record_write(spec.name, operation, ok=False)
            log.warning("write failed", extra={"secret": spec.name, "namespace": change.namespace, "error": str(exc)})
            return ChangeOutcome(change, error=str(exc))
        if final.action is not Action.CONFLICT and final.changed:
            real_operation = WriteOperation.CREATE if final.action is Action.CREATE else operation
            self.metrics.record_write(spec.name, real_operation, ok=True)
        reason = OTHER_INSTANCE_REASON.format(final.owner) if final.owner else _reason(final.action, change.reason)
        return ChangeOutcome(_with(change, final.action, reason))

    def _do(self, spec: SecretSpec, desired: DesiredSecret, change: PlannedChange) -> WriteResult:
        adopt, now = spec.on_conflict == "adopt", self.clock()
        if change.action is Action.CREATE:
            return self.cluster.create(change.namespace, desired, adopt=adopt, now=now)
        if change.action is Action.UPDATE:
            return self.cluster.update(change.namespace, desired, change.resource_version or "", adopt=adopt, now=now)
        self.cluster.delete(change.namespace, change.secret, change.resource_version or "")
        return WriteResult(Action.PRUNE, changed=True)

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
            self.link_accounts(spec, result, dry_run=False, within=namespace)
        except KubeError as exc:
            result.source_errors.append(str(exc))
        if self.events is not None:
            self.events.emit(_events(result), self.clock())
        action = result.outcomes[0].change.action.value if result.outcomes else "none"
        log.info("namespace sync finished", extra={"secret": spec.name, "namespace": namespace, "action": action})
        return result

    def link_accounts(self, spec: SecretSpec, result: SyncResult, *, dry_run: bool, within: str | None = None) -> None:
        """Add the Secret to the listed ServiceAccounts where it now exists; take back the references
        syncd added where it was pruned or the ServiceAccount is no longer listed."""
        present = {o.change.namespace for o in result.outcomes if o.ok and o.change.action in _PRESENT}
        pruned = {o.change.namespace for o in result.outcomes if o.ok and o.change.action is Action.PRUNE}
        wanted = spec.service_accounts if present else []
        self._edit_accounts(spec.name, wanted, present, pruned, result, dry_run=dry_run, within=within)

    def _edit_accounts(
        self,
        secret: str,
        wanted: list[str],
        present: set[str],
        pruned: set[str],
        result: SyncResult,
        *,
        dry_run: bool,
        within: str | None,
    ) -> None:
        visible = self.config.service_account_names()  # what RBAC grants: None = every ServiceAccount
        if visible == [] or not (wanted or pruned):
            return
        try:
            accounts = self.cluster.service_accounts(visible, within)
        except KubeError as exc:
            result.service_account_errors.append(str(exc))
            return
        planned = plan_accounts(
            secret, instance=self.config.instance, wanted=wanted, present=present, pruned=pruned, accounts=accounts
        )
        result.account_changes = planned if dry_run else self._edit_accounts_concurrently(planned, accounts)
        result.service_account_errors += [c.error for c in result.account_changes if c.error]

    def _edit_accounts_concurrently(
        self, planned: list[AccountChange], accounts: list[ServiceAccountRef]
    ) -> list[AccountChange]:
        """On the write pool, as the Secrets: a first rollout edits as many ServiceAccounts as it
        creates Secrets, and one by one they took longer than all the Secrets together. Each patch
        starts from the version listed (no GET first), conditioned on it."""
        known = {(a.namespace, a.name): a for a in accounts}
        if len(planned) <= 1:
            return [self._edit_account(change, known) for change in planned]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="syncd-write") as pool:
            return list(pool.map(lambda change: self._edit_account(change, known), planned))

    def _edit_account(self, change: AccountChange, known: Mapping[tuple[str, str], ServiceAccountRef]) -> AccountChange:
        edit = self.cluster.add_pull_secret if change.link else self.cluster.remove_pull_secret
        seen = known.get((change.namespace, change.service_account))
        try:
            edit(change.namespace, change.service_account, change.secret, self.config.instance, known=seen)
        except KubeError as exc:
            self.metrics.record_write(change.secret, WriteOperation.PATCH_SERVICE_ACCOUNT, ok=False)
            log.warning("ServiceAccount patch failed", extra={"secret": change.secret, "error": str(exc)})
            return replace(change, error=str(exc))
        self.metrics.record_write(change.secret, WriteOperation.PATCH_SERVICE_ACCOUNT, ok=True)
        return change

    def prune_retired(self, *, dry_run: bool = False, also: Iterable[str] = ()) -> SyncResult:
        """The Secrets of specs in `retired_secrets` (and `also`: specs a reload just removed), with
        the ServiceAccount references syncd added to them. Each is listed by its name."""
        result = SyncResult(secret="(removed specs)", dry_run=dry_run)  # noqa: S106 - a label, not a password
        current = {s.name for s in self.config.secrets}
        for name in sorted((set(self.config.retired_names) | set(also)) - current):
            try:
                plan = plan_retired(self.cluster.managed_secrets(name), self.config.instance)
            except KubeError as exc:
                result.source_errors.append(str(exc))
                continue
            outcomes = [ChangeOutcome(change) if dry_run else self._delete_retired(change) for change in plan]
            result.outcomes += outcomes
            pruned = {o.change.namespace for o in outcomes if o.ok}
            changes = SyncResult(secret=name)
            self._edit_accounts(name, [], set(), pruned, changes, dry_run=dry_run, within=None)
            result.account_changes += changes.account_changes
            result.service_account_errors += changes.service_account_errors
        return result

    def _delete_retired(self, change: PlannedChange) -> ChangeOutcome:
        try:
            self.cluster.delete(change.namespace, change.secret, change.resource_version or "")
        except KubeError as exc:
            return ChangeOutcome(change, error=str(exc))
        return ChangeOutcome(change)

    def record(self, secret: str, result: SyncResult, seconds: float, *, vouched: bool = True) -> None:
        """Metrics and the log line of one sync; only a `vouched` one (its sources asked) moves last success."""
        if result.dry_run:
            return
        succeeded = vouched and not result.source_errors and not result.failed_writes
        self.metrics.record_sync(secret, result.result, seconds, at=self.clock() if succeeded else None)
        if not result.source_errors:
            self.metrics.set_namespace_states(secret, _namespace_states(result))
        for error in result.source_errors:
            log.error("sync failed: %s", error, extra={"secret": secret})
        log.info(
            "sync finished",
            extra={"secret": secret, "result": result.result, "duration_seconds": round(seconds, 3), **_counts(result)},
        )


_PRESENT = {Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.ADOPT}
_OPERATIONS = {
    Action.CREATE: WriteOperation.CREATE,
    Action.UPDATE: WriteOperation.UPDATE,
    Action.PRUNE: WriteOperation.DELETE,
}


def _with(change: PlannedChange, action: Action, reason: str) -> PlannedChange:
    return PlannedChange(change.namespace, change.secret, action, reason, change.resource_version)


def _reason(action: Action, planned_reason: str) -> str:
    return {
        Action.CONFLICT: "a Secret of that name exists and syncd does not manage it",
        Action.ADOPT: "adopted an existing Secret",
    }.get(action, planned_reason)


def _namespace_states(result: SyncResult) -> Counter[NamespaceState]:
    return Counter(_state(o) for o in result.outcomes if o.change.action is not Action.PRUNE)


def _state(outcome: ChangeOutcome) -> NamespaceState:
    if not outcome.ok:
        return NamespaceState.FAILED
    return NamespaceState.CONFLICT if outcome.change.action is Action.CONFLICT else NamespaceState.IN_SYNC


def _events(result: SyncResult) -> list[EventNote]:
    """(namespace, secret, reason, message) for changes and trouble; names and counts only."""
    found = []
    for o in result.outcomes:
        namespace, secret = o.change.namespace, o.change.secret
        if not o.ok:
            found.append((namespace, secret, EventReason.SYNC_FAILED, f"syncd could not write {secret}: {o.error}"))
        elif o.change.action is Action.CONFLICT:
            found.append((namespace, secret, EventReason.CONFLICT, f"{secret}: {o.change.reason}"))
        elif o.change.action in (Action.CREATE, Action.UPDATE, Action.ADOPT):
            done = {Action.CREATE: "created", Action.UPDATE: "updated", Action.ADOPT: "adopted"}[o.change.action]
            found.append((namespace, secret, EventReason.SYNCED, f"syncd {done} {secret}"))
    return found


def _counts(result: SyncResult) -> dict[str, int]:
    counts = {action.value: result.count(action) for action in Action}
    counts["failed"] = len(result.failed_writes)
    return counts
