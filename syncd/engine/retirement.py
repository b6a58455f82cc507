"""Retirement: the Secrets of specs moved to `retired_secrets` (or just removed by a reload),
deleted where their spec asked for pruning, with the ServiceAccount references syncd added to them.

Each retired spec goes through the rollout's one path, a delete as its step: its Secrets are
listed by its name, then each namespace's task deletes the Secret and takes back the references
syncd recorded there as its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from syncd.config import Config
from syncd.core.errors import KubeError
from syncd.core.values import ChangeOutcome, PlannedChange, SyncResult
from syncd.engine.plan import plan_retired
from syncd.engine.ports import Cluster
from syncd.engine.rollout import Rollout, Step


class Retirement:
    def __init__(self, *, cluster: Cluster, rollout: Rollout, config: Callable[[], Config]) -> None:
        self.cluster = cluster
        self.rollout = rollout
        self.config = config

    def prune(self, *, dry_run: bool = False, also: Iterable[str] = ()) -> SyncResult:
        """The Secrets of specs in `retired_secrets` (and `also`: specs a reload just removed), with
        the ServiceAccount references syncd added to them. Each is listed by its name."""
        config = self.config()
        result = SyncResult(secret="(removed specs)", dry_run=dry_run)  # noqa: S106 - a label, not a password
        current = {s.name for s in config.secrets}
        for name in sorted((set(config.retired_names) | set(also)) - current):
            try:
                plan = plan_retired(self.cluster.managed_secrets(name), config.instance)
            except KubeError as exc:
                result.cluster_errors.append(str(exc))
                continue
            step: Step = ChangeOutcome if dry_run else self._delete
            self.rollout.fan_out(plan, step, secret=name, wanted=[], result=result, edit=not dry_run)
        return result

    def _delete(self, change: PlannedChange) -> ChangeOutcome:
        try:
            self.cluster.delete(change.namespace, change.secret, change.resource_version or "")
        except KubeError as exc:
            return ChangeOutcome(change, error=str(exc))
        return ChangeOutcome(change)
