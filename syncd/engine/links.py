"""ServiceAccount links: a Secret added to the imagePullSecrets of the ServiceAccounts its spec
names, and the references syncd added taken back where the Secret was pruned or the ServiceAccount
is no longer named.

One path for every sync (a whole spec, one namespace, a dry run, retired specs; see
rollout.Rollout.fan_out): the ServiceAccounts are listed once, before any write, and each
namespace's task then plans and makes its own edits right after its Secret's write. Each PATCH
starts from the version listed (no GET first), conditioned on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from syncd.config import Config
from syncd.core.errors import KubeError
from syncd.core.values import AccountChange, Action, ChangeOutcome, ServiceAccountRef, SyncResult, WriteOperation
from syncd.engine.metrics import Metrics
from syncd.engine.plan import plan_accounts
from syncd.engine.ports import Cluster

log = logging.getLogger(__name__)

# Where a change leaves the spec's Secret in its namespace, so that ServiceAccounts may name it.
PRESENT = frozenset({Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.ADOPT})


class Listed:
    """The ServiceAccounts one sync may edit, as listed before its writes."""

    def __init__(self, accounts: list[ServiceAccountRef] | None = None) -> None:
        self.known = {(a.namespace, a.name): a for a in accounts or []}
        self._order = {key: index for index, key in enumerate(self.known)}
        self._by_namespace: dict[str, list[ServiceAccountRef]] = {}
        for account in accounts or []:
            self._by_namespace.setdefault(account.namespace, []).append(account)

    def in_namespace(self, namespace: str) -> list[ServiceAccountRef]:
        return self._by_namespace.get(namespace, [])

    def in_order(self, changes: Iterable[AccountChange]) -> list[AccountChange]:
        """In the order the ServiceAccounts were listed, whichever namespace's task finished first."""
        return sorted(changes, key=lambda c: self._order[(c.namespace, c.service_account)])


class AccountLinks:
    def __init__(self, cluster: Cluster, metrics: Metrics, config: Callable[[], Config]) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.config = config

    def listed(
        self, wanted: list[str], actions: Iterable[Action], result: SyncResult, *, within: str | None = None
    ) -> Listed:
        """The ServiceAccounts these planned `actions` may edit (in the namespace `within`, or in
        all), listed once before the writes; none when no edit is possible: nothing `wanted` where a
        Secret will be, and nothing pruned. A failed list is reported and the Secrets still written."""
        visible = self.config().service_account_names()  # what RBAC grants: None = every ServiceAccount
        planned = set(actions)
        may_link = bool(wanted) and not PRESENT.isdisjoint(planned)
        if visible == [] or not (may_link or Action.PRUNE in planned):
            return Listed()
        try:
            return Listed(self.cluster.service_accounts(visible, within))
        except KubeError as exc:
            result.service_account_errors.append(str(exc))
            return Listed()

    def follow(
        self, secret: str, wanted: list[str], outcome: ChangeOutcome, listed: Listed, *, edit: bool
    ) -> list[AccountChange]:
        """The links of `outcome`'s namespace, made one by one (`edit`) or only planned (a dry run).
        `wanted`: the spec's ServiceAccount names ("*": all). A Secret that failed to write, or that
        is not ours (a conflict), is never linked."""
        action, namespace = outcome.change.action, outcome.change.namespace
        accounts = listed.in_namespace(namespace)
        if not accounts or not outcome.ok or action not in PRESENT | {Action.PRUNE}:
            return []
        planned = plan_accounts(
            secret,
            instance=self.config().instance,
            wanted=wanted,
            present={namespace} if action in PRESENT else set(),
            pruned={namespace} if action is Action.PRUNE else set(),
            accounts=accounts,
        )
        return [self._edit(change, listed) for change in planned] if edit else planned

    def _edit(self, change: AccountChange, listed: Listed) -> AccountChange:
        edit = self.cluster.add_pull_secret if change.link else self.cluster.remove_pull_secret
        seen = listed.known.get((change.namespace, change.service_account))
        try:
            edit(change.namespace, change.service_account, change.secret, self.config().instance, known=seen)
        except KubeError as exc:
            self.metrics.record_write(change.secret, WriteOperation.PATCH_SERVICE_ACCOUNT, ok=False)
            log.warning("ServiceAccount patch failed", extra={"secret": change.secret, "error": str(exc)})
            return replace(change, error=str(exc))
        self.metrics.record_write(change.secret, WriteOperation.PATCH_SERVICE_ACCOUNT, ok=True)
        return change
