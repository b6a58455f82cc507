"""Value types shared by sources, rendering, planning and reporting."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistryCredential:
    """One registry login. `password` is hidden from repr so that it never reaches a log line."""

    registry: str
    username: str
    password: str = field(repr=False)
    email: str = ""


@dataclass(frozen=True)
class FetchedCredential:
    """What one source call returned for one configured credential."""

    name: str
    source: str
    entries: tuple[RegistryCredential, ...]
    expires_at: dt.datetime | None = None


class Action(enum.StrEnum):
    """What the plan does with one namespace's Secret (SPEC §2: the dry-run vocabulary)."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    ADOPT = "adopt"
    PRUNE = "prune"


@dataclass(frozen=True)
class PlannedChange:
    """One namespace's Secret: what will happen and why (never its content)."""

    namespace: str
    secret: str
    action: Action
    reason: str = ""
    resource_version: str | None = None


@dataclass(frozen=True)
class ChangeOutcome:
    """A planned change after it was applied; `error` is set when the write failed."""

    change: PlannedChange
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SyncResult:
    """The outcome of one sync of one secret spec, for the CLI, logs and metrics."""

    secret: str
    outcomes: list[ChangeOutcome] = field(default_factory=list)
    source_errors: list[str] = field(default_factory=list)
    service_account_errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    def count(self, action: Action, *, failed: bool = False) -> int:
        return sum(1 for o in self.outcomes if o.change.action is action and (o.ok != failed))

    @property
    def failed_writes(self) -> list[ChangeOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def conflicts(self) -> list[ChangeOutcome]:
        return [o for o in self.outcomes if o.change.action is Action.CONFLICT]

    @property
    def result(self) -> str:
        """`success`, `partial` (some namespaces failed or conflict) or `failure` (nothing written)."""
        if self.source_errors:
            return "failure"
        if self.failed_writes or self.conflicts or self.service_account_errors:
            return "partial"
        return "success"
