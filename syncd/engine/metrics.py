"""Every metric of SPEC §5, defined once and registered into a registry passed in.

Callers record through the typed methods below, whose label values are the enums of
syncd.core.values (and CallResult / Verification here), so that `start_at_zero` and `forget` name
exactly the series the code writes. No label ever carries a namespace name (cardinality) or a
secret value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import threading
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from syncd import __version__
from syncd.config import Config, VaultCredential
from syncd.core.values import NamespaceState, PullFailureReason, RunResult, WriteOperation
from syncd.engine.admission import AdmissionResult


class CallResult(enum.StrEnum):
    """`result` of a source request, a write or a config reload."""

    SUCCESS = "success"
    FAILURE = "failure"


class Verification(enum.StrEnum):
    """syncd_credential_verifications_total `result`."""

    SUCCESS = "success"
    REJECTED = "rejected"  # the registry refused the login
    UNAVAILABLE = "unavailable"  # the check could not run (and holds the rollout)


def _result(ok: bool) -> CallResult:
    return CallResult.SUCCESS if ok else CallResult.FAILURE


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._expiring: set[str] = set()  # credentials with an expiry series, for `forget`
        self._lock = threading.Lock()
        self.sync_runs = Counter(
            "syncd_sync_runs",
            "Syncs of a secret spec, by result (success, partial, failure).",
            ["secret", "result"],
            registry=registry,
        )
        self.sync_duration = Histogram(
            "syncd_sync_duration_seconds",
            "Duration of one sync of a secret spec.",
            ["secret"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "When a sync of the spec last fetched every credential and had no failed write.",
            ["secret"],
            registry=registry,
        )
        self.source_requests = Counter(
            "syncd_source_requests",
            "Calls to credential sources.",
            ["credential", "source", "result"],
            registry=registry,
        )
        self.credential_expiry = Gauge(
            "syncd_credential_expiry_timestamp_seconds",
            "When the last fetched credential expires (when known).",
            ["credential"],
            registry=registry,
        )
        self.secret_writes = Counter(
            "syncd_secret_writes",
            "Writes to the Kubernetes API.",
            ["secret", "operation", "result"],
            registry=registry,
        )
        self.namespaces = Gauge(
            "syncd_namespaces",
            "Selected namespaces of a spec by state after its last sync.",
            ["secret", "state"],
            registry=registry,
        )
        self.credential_verifications = Counter(
            "syncd_credential_verifications",
            "Checks of fresh credentials against their registry's /v2/.",
            ["credential", "result"],
            registry=registry,
        )
        self.leader = Gauge(
            "syncd_leader", "1 when this replica may write (holds the lease, or election is off).", registry=registry
        )
        self.image_pull_failures = Counter(
            "syncd_image_pull_failures",
            "Image pulls the kubelet reported failed for a Secret syncd writes (pull_failures: true): the "
            "registry refused the login (auth_failed) or the Pod's pull Secret was missing (secret_unavailable).",
            ["secret", "registry", "reason"],
            registry=registry,
        )
        self.config_reloads = Counter("syncd_config_reloads", "Config file reloads.", ["result"], registry=registry)
        self.status_writes = Counter(
            "syncd_status_writes",
            "Writes of PullSecretSync status objects by result: written, failed, or skipped_no_crd (the CRD "
            "is not installed: status objects are off until a restart; syncing goes on).",
            ["result"],
            registry=registry,
        )
        self.admission_requests = Counter(
            "syncd_admission_requests",
            "AdmissionReviews of Pod creations answered by the webhook, by result: patched (a pull Secret "
            "appended), unchanged (listed already), skipped (no spec serves the Pod), error (unreadable review).",
            ["result"],
            registry=registry,
        )
        self.admission_duration = Histogram(
            "syncd_admission_duration_seconds",
            "Time to answer one AdmissionReview, from its last byte read to the answer.",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
        )
        self.pods_repaired = Counter(
            "syncd_pods_repaired",
            "Pods stuck without a spec's pull Secret that repair_pods evicted so that their controller makes a "
            "new one, by result: success, or failure (the eviction was refused: RBAC, the apiserver).",
            ["secret", "result"],
            registry=registry,
        )
        self.lease_renewals = Counter(
            "syncd_vault_lease_renewals",
            "Renewals of the lease of a fetched login (instead of reading a new one), by result: failure "
            "includes a renewal granting less than asked (max TTL near), after which a new login is read.",
            ["credential", "result"],
            registry=registry,
        )
        self.lease_revocations = Counter(
            "syncd_vault_lease_revocations",
            "Revocations of a replaced login's lease once every spec using it rolled the new login out, by "
            "result: a failure leaves the old login valid until its lease's TTL ends.",
            ["credential", "result"],
            registry=registry,
        )
        self.build_info = Gauge(
            "syncd_build_info", "Always 1; the version label says which build.", ["version"], registry=registry
        )
        self.build_info.labels(version=__version__).set(1)

    # -- recording ---------------------------------------------------------------------------

    def record_sync(self, secret: str, result: RunResult, seconds: float, *, at: dt.datetime | None) -> None:
        """One sync of a spec; `at` (when every credential came and no write failed) sets last success."""
        self.sync_runs.labels(secret=secret, result=result).inc()
        self.sync_duration.labels(secret=secret).observe(seconds)
        if at is not None:
            self.last_success.labels(secret=secret).set(at.timestamp())

    def set_namespace_states(self, secret: str, counts: Mapping[NamespaceState, int]) -> None:
        for state in NamespaceState:
            self.namespaces.labels(secret=secret, state=state).set(counts.get(state, 0))

    def record_source_request(self, credential: str, source: str, *, ok: bool) -> None:
        self.source_requests.labels(credential=credential, source=source, result=_result(ok)).inc()

    def record_lease_renewal(self, credential: str, *, ok: bool) -> None:
        self.lease_renewals.labels(credential=credential, result=_result(ok)).inc()

    def record_lease_revocation(self, credential: str, *, ok: bool) -> None:
        self.lease_revocations.labels(credential=credential, result=_result(ok)).inc()

    def set_expiry(self, credential: str, at: dt.datetime) -> None:
        with self._lock:
            self._expiring.add(credential)
        self.credential_expiry.labels(credential=credential).set(at.timestamp())

    def record_write(self, secret: str, operation: WriteOperation, *, ok: bool) -> None:
        self.secret_writes.labels(secret=secret, operation=operation, result=_result(ok)).inc()

    def record_verification(self, credential: str, result: Verification) -> None:
        self.credential_verifications.labels(credential=credential, result=result).inc()

    def record_reload(self, *, ok: bool) -> None:
        self.config_reloads.labels(result=_result(ok)).inc()

    def record_pull_failure(self, secret: str, registry: str, reason: PullFailureReason, times: int) -> None:
        self.image_pull_failures.labels(secret=secret, registry=registry, reason=reason).inc(times)

    def status_write(self, result: str) -> None:
        self.status_writes.labels(result=result).inc()

    def record_admission(self, result: AdmissionResult, seconds: float) -> None:
        self.admission_requests.labels(result=result).inc()
        self.admission_duration.observe(seconds)

    def record_repair(self, secret: str, *, ok: bool) -> None:
        self.pods_repaired.labels(secret=secret, result=_result(ok)).inc()

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    # -- series lifecycle --------------------------------------------------------------------

    def start_at_zero(self, config: Config) -> None:
        """Create every counter series at 0, so that `increase()` in alert rules sees the first event."""
        for spec in config.secrets:
            for run in RunResult:
                self.sync_runs.labels(secret=spec.name, result=run)
        for credential in config.credentials:
            for call in CallResult:
                self.source_requests.labels(credential=credential.name, source=credential.source, result=call)
            if isinstance(credential, VaultCredential) and credential.vault.kv is None:
                for call in CallResult:
                    self.lease_renewals.labels(credential=credential.name, result=call)
                    self.lease_revocations.labels(credential=credential.name, result=call)
            if credential.verify:
                for verification in Verification:
                    self.credential_verifications.labels(credential=credential.name, result=verification)
        for call in CallResult:
            self.config_reloads.labels(result=call)
        self._optional_at_zero(config)

    def _optional_at_zero(self, config: Config) -> None:
        """The series of what the config turns on."""
        if config.pull_failures:
            self._pull_failures_at_zero(config)
        if config.admission.enabled:
            for admission in AdmissionResult:
                self.admission_requests.labels(result=admission)
        if config.repair_pods:
            for spec in config.secrets:
                for call in CallResult:
                    self.pods_repaired.labels(secret=spec.name, result=call)

    def _pull_failures_at_zero(self, config: Config) -> None:
        for spec in config.secrets:
            self.image_pull_failures.labels(secret=spec.name, registry="", reason=PullFailureReason.SECRET_UNAVAILABLE)
            for key in sorted(set().union(*(config.auth_keys(c) for c in spec.credentials))):
                self.image_pull_failures.labels(secret=spec.name, registry=key, reason=PullFailureReason.AUTH_FAILED)

    def forget(self, specs: Iterable[str], credentials_kept: set[str]) -> None:
        """Drop the series of specs and credentials a reload removed: stale gauges would page forever."""
        for spec in specs:
            for gauge in (self.last_success, self.sync_duration):
                _remove(gauge, secret=spec)
            for state in NamespaceState:
                _remove(self.namespaces, secret=spec, state=state)
        with self._lock:
            gone, self._expiring = self._expiring - credentials_kept, self._expiring & credentials_kept
        for credential in gone:
            _remove(self.credential_expiry, credential=credential)


def _remove(metric: Gauge | Histogram, **labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels.values())
