"""Rolling a Secret out to its namespaces: one task per namespace, on one pool, writes (or in a
dry run previews) that namespace's Secret and then follows it with that namespace's
ServiceAccount links (links.AccountLinks).

A first rollout's patches so start as their Secrets land, not after the last one: two waves (every
Secret, then every patch) left the pool idle between them (bench/README.md, rows 9 and 11).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from syncd.config import Config, SecretSpec
from syncd.core.errors import KubeError
from syncd.core.values import (
    AccountChange,
    Action,
    ChangeOutcome,
    DesiredSecret,
    Ownership,
    PlannedChange,
    SyncResult,
    WriteOperation,
    WriteResult,
)
from syncd.engine.links import AccountLinks
from syncd.engine.metrics import Metrics
from syncd.engine.plan import OTHER_INSTANCE_REASON
from syncd.engine.ports import Cluster

log = logging.getLogger(__name__)

Step = Callable[[PlannedChange], ChangeOutcome]
_Done = TypeVar("_Done")


class Rollout:
    def __init__(
        self,
        *,
        cluster: Cluster,
        metrics: Metrics,
        links: AccountLinks,
        config: Callable[[], Config],
        clock: Callable[[], dt.datetime],
        workers: int,
    ) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.links = links
        self.config = config
        self.clock = clock
        self.workers = workers

    def apply(
        self,
        spec: SecretSpec,
        desired: DesiredSecret,
        plan: list[PlannedChange],
        result: SyncResult,
        *,
        within: str | None = None,
    ) -> None:
        """The writes of `plan` (all in the namespace `within`, if given) and their links."""
        write = partial(self._write, spec, desired)
        self.fan_out(plan, write, secret=spec.name, wanted=spec.service_accounts, result=result, within=within)

    def preview(self, spec: SecretSpec, plan: list[PlannedChange], result: SyncResult) -> None:
        """Dry run: what each planned change would do, from reads only, and the links it would make."""
        read = partial(self._preview, spec)
        self.fan_out(plan, read, secret=spec.name, wanted=spec.service_accounts, result=result, edit=False)

    def fan_out(
        self,
        plan: list[PlannedChange],
        step: Step,
        *,
        secret: str,
        wanted: list[str],
        result: SyncResult,
        edit: bool = True,
        within: str | None = None,
    ) -> None:
        """The one path of every rollout: the ServiceAccounts listed once, then per namespace `step`
        (a write, a delete or a preview) and, if the Secret is there and ours or was pruned, that
        namespace's links, made (`edit`) or only planned. Outcomes in the plan's order."""
        listed = self.links.listed(wanted, (change.action for change in plan), result, within=within)

        def in_namespace(change: PlannedChange) -> tuple[ChangeOutcome, list[AccountChange]]:
            outcome = step(change)
            return outcome, self.links.follow(secret, wanted, outcome, listed, edit=edit)

        done = self._each(in_namespace, plan, "syncd-write" if edit else "syncd-read")
        result.outcomes += [outcome for outcome, _ in done]
        changes = listed.in_order(change for _, changes in done for change in changes)
        result.account_changes += changes
        result.service_account_errors += [change.error for change in changes if change.error]

    def _each(self, task: Callable[[PlannedChange], _Done], plan: list[PlannedChange], pool: str) -> list[_Done]:
        if len(plan) <= 1:  # one namespace (a watch-triggered sync): no thread to start for it
            return [task(change) for change in plan]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=pool) as threads:
            return list(threads.map(task, plan))

    def _preview(self, spec: SecretSpec, change: PlannedChange) -> ChangeOutcome:
        """Dry run: reads only. A planned create is checked for a foreign Secret in the way."""
        if change.action is not Action.CREATE:
            return ChangeOutcome(change)
        try:
            existing = self.cluster.read_secret(change.namespace, change.secret)
        except KubeError as exc:
            return ChangeOutcome(change, error=str(exc))
        if existing is not None and existing.ownership(self.config().instance) is Ownership.OTHER_INSTANCE:
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
