"""Value types shared by sources, rendering, planning and reporting."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistryCredential:
    """One registry login. `password` is hidden from repr so that it never reaches a log line."""

    registry: str
    username: str
    password: str = field(repr=False)
    email: str = ""


@dataclass(frozen=True)
class Lease:
    """A dynamic secret's lease as Vault handed it out. The id revokes or renews the login it
    leases: sensitive like a password (hidden from repr, masked in logs, never a metric label)."""

    id: str = field(repr=False)
    renewable: bool
    duration: dt.timedelta


@dataclass(frozen=True)
class FetchedCredential:
    """What one source call returned for one configured credential; `lease` is set for a leased
    login (a dynamic engine's), which the fetcher may renew, and revokes once it is replaced everywhere."""

    name: str
    source: str
    entries: tuple[RegistryCredential, ...]
    expires_at: dt.datetime | None = None
    lease: Lease | None = None


class RunResult(enum.StrEnum):
    """The `result` of one sync of a spec (syncd_sync_runs_total, CLI, logs)."""

    SUCCESS = "success"
    PARTIAL = "partial"  # some namespaces failed or are in conflict
    FAILURE = "failure"  # a source or validation failed: nothing written


class PullFailureReason(enum.StrEnum):
    """syncd_image_pull_failures_total `reason` (syncd.engine.pull_failures: from the kubelet's Events)."""

    AUTH_FAILED = "auth_failed"  # kubelet reason Failed: the registry refused the login
    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 (kubelet reason FailedToRetrieveImagePullSecret)


class NamespaceState(enum.StrEnum):
    """A selected namespace after a sync (syncd_namespaces `state`)."""

    IN_SYNC = "in_sync"
    FAILED = "failed"
    CONFLICT = "conflict"


class WriteOperation(enum.StrEnum):
    """syncd_secret_writes_total `operation`."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    PATCH_SERVICE_ACCOUNT = "patch_service_account"


class EventReason(enum.StrEnum):
    """Every reason of the Kubernetes Events syncd writes (about one of its Secrets)."""

    SYNCED = "Synced"  # Normal: created, updated or adopted
    SYNC_FAILED = "SyncFailed"  # Warning: a write failed
    CONFLICT = "Conflict"  # Warning: a Secret of that name is not this instance's
    POD_REPAIRED = "PodRepaired"  # Normal, on a Pod's owner: the Pod was evicted to get its pull Secret


# (namespace, secret, reason, message) of one Event to write: names and counts, never a value.
EventNote = tuple[str, str, EventReason, str]


class Action(enum.StrEnum):
    """What the plan does with one namespace's Secret (SPEC §2: the dry-run vocabulary)."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    ADOPT = "adopt"
    PRUNE = "prune"


@dataclass(frozen=True)
class WriteResult:
    """What a write really did: a planned create may end as a conflict (with another instance,
    `owner`) or an adoption; `changed` is whether the API object changed."""

    action: Action
    changed: bool
    owner: str | None = None
    reason: str = ""  # why a conflict, where the owner does not say it


# A Secret's type is immutable: adopting one of another type would leave it unusable as a pull
# Secret (the kubelet reads only dockerconfigjson ones here) and rewritten on every sync.
WRONG_TYPE_REASON = "a Secret of that name of type {} exists; adopting it cannot make it a pull Secret (delete it)"


def adoption_refused(existing_type: str | None) -> WriteResult | None:
    """The conflict an adoption of a Secret of another type ends in, None when it may be adopted."""
    if existing_type == SECRET_TYPE:
        return None
    return WriteResult(Action.CONFLICT, changed=False, reason=WRONG_TYPE_REASON.format(existing_type or "(none)"))


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
    # The apiserver refused or did not answer a read the sync needs (a list, a namespace): nothing
    # was planned, so nothing was written. Apart from source_errors, so that the status blames the
    # cluster, not Vault or the helper.
    cluster_errors: list[str] = field(default_factory=list)
    service_account_errors: list[str] = field(default_factory=list)
    account_changes: list[AccountChange] = field(default_factory=list)
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
    def errors(self) -> list[str]:
        """Every error of the run that is not one namespace's write: for logs and the CLI."""
        return self.source_errors + self.cluster_errors + self.service_account_errors

    @property
    def stopped(self) -> bool:
        """The run stopped before writing: its sources or the apiserver's reads failed."""
        return bool(self.source_errors or self.cluster_errors)

    @property
    def result(self) -> RunResult:
        if self.stopped:
            return RunResult.FAILURE
        if self.failed_writes or self.conflicts or self.service_account_errors:
            return RunResult.PARTIAL
        return RunResult.SUCCESS


MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "syncd"
SPEC_LABEL = "syncd.io/secret"
# Which installation wrote an object: every update, prune and ServiceAccount edit is decided only
# over objects carrying this installation's value (0.1.0 wrote none: see Ownership.LEGACY).
INSTANCE_LABEL = "syncd.io/instance"
DEFAULT_INSTANCE = "default"
# On a ServiceAccount syncd does not own: the imagePullSecrets entries syncd added, as
# comma-separated `instance/secret`, so that a prune removes those and no others.
ADDED_PULL_SECRETS_ANNOTATION = "syncd.io/added-pull-secrets"
HASH_ANNOTATION = "syncd.io/content-hash"
CREDENTIALS_ANNOTATION = "syncd.io/credentials"
SYNCED_AT_ANNOTATION = "syncd.io/synced-at"
# Records the spec's `prune` at write time, so that Secrets of a spec later removed from the
# config are deleted only if that spec asked for pruning.
MUTATE_PATH = "/mutate"  # the admission webhook's route (syncd.daemon.server.webhook, syncd admission)
PRUNE_ANNOTATION = "syncd.io/prune"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"  # noqa: S105 - a type name
DATA_KEY = ".dockerconfigjson"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class DesiredSecret:
    """What every selected namespace should hold for one secret spec. Content stays out of repr."""

    name: str
    content: bytes = field(repr=False)
    content_hash: str
    credentials: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    prune: bool = True
    instance: str = DEFAULT_INSTANCE


class Ownership(enum.StrEnum):
    """Whose a Secret of a spec's name is, seen from one installation."""

    OURS = "ours"
    LEGACY = "legacy"  # written by 0.1.0 (no instance label): taken over by an instance naming its spec
    OTHER_INSTANCE = "other_instance"  # another installation's: never updated, adopted or pruned
    UNMANAGED = "unmanaged"  # not syncd's at all: a conflict unless `on_conflict: adopt`


@dataclass(frozen=True, slots=True)
class ExistingSecret:
    """A Secret as found in the cluster: ownership and hashes, never its content."""

    namespace: str
    name: str
    resource_version: str
    managed: bool
    spec: str | None = None
    annotated_hash: str | None = None
    data_hash: str | None = None
    secret_type: str | None = None
    synced_at: str | None = None
    credentials: str | None = None
    registries: tuple[str, ...] = ()
    prune: bool = False
    instance: str | None = None

    def ownership(self, instance: str) -> Ownership:
        if not self.managed:
            return Ownership.UNMANAGED
        if self.instance is None:
            return Ownership.LEGACY
        return Ownership.OURS if self.instance == instance else Ownership.OTHER_INSTANCE

    def matches(self, desired: DesiredSecret) -> bool:
        """In sync: ours, of the right type, and both its data and its annotation hash are current."""
        return (
            self.ownership(desired.instance) is Ownership.OURS
            and self.secret_type == SECRET_TYPE
            and self.data_hash == desired.content_hash
            and self.annotated_hash == desired.content_hash
            and self.credentials == ",".join(desired.credentials)
        )


@dataclass(frozen=True, slots=True)
class ServiceAccountRef:
    """A ServiceAccount, the names of the Secrets in its imagePullSecrets, and which of those
    syncd added (`instance/secret` entries of ADDED_PULL_SECRETS_ANNOTATION)."""

    namespace: str
    name: str
    pull_secrets: tuple[str, ...]
    added: tuple[str, ...] = ()
    resource_version: str | None = field(default=None, compare=False)  # what a patch may be conditioned on

    def added_by(self, instance: str, secret: str) -> bool:
        return added_entry(instance, secret) in self.added


def added_entry(instance: str, secret: str) -> str:
    return f"{instance}/{secret}"


def parse_added(annotation: str | None) -> tuple[str, ...]:
    return tuple(entry.strip() for entry in (annotation or "").split(",") if entry.strip())


@dataclass(frozen=True)
class AccountChange:
    """Adding (`link`) or removing (`unlink`) a Secret in one ServiceAccount's imagePullSecrets."""

    namespace: str
    service_account: str
    secret: str
    link: bool
    error: str | None = None

    @property
    def action(self) -> str:
        return "link" if self.link else "unlink"


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """A namespace as selection sees it: its name, whether it is terminating, its labels."""

    name: str
    terminating: bool = False
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class PodOwner:
    """A Pod's controller, from its ownerReference with `controller: true`."""

    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class ObservedPod:
    """What repair reads of a Pod (syncd.engine.repair), parsed once at the API's edge (syncd.kube.pods).

    `failing_images` are the spec images of the containers (init ones included) the kubelet reports
    waiting in ErrImagePull or ImagePullBackOff, in the Pod's order."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    service_account: str
    phase: str
    terminating: bool
    pull_secrets: tuple[str, ...]
    controller: PodOwner | None
    failing_images: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
