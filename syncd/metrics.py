"""Every metric of SPEC §5, defined once and registered into a registry passed in.

No label ever carries a namespace name (cardinality) or a secret value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from syncd import __version__
from syncd.config import Config


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
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
        self.config_reloads = Counter("syncd_config_reloads", "Config file reloads.", ["result"], registry=registry)
        self.build_info = Gauge(
            "syncd_build_info", "Always 1; the version label says which build.", ["version"], registry=registry
        )
        self.build_info.labels(version=__version__).set(1)

    def start_at_zero(self, config: Config) -> None:
        """Create every counter series at 0, so that `increase()` in alert rules sees the first event."""
        for spec in config.secrets:
            for result in ("success", "partial", "failure"):
                self.sync_runs.labels(secret=spec.name, result=result)
        for credential in config.credentials:
            for result in ("success", "failure"):
                self.source_requests.labels(credential=credential.name, source=credential.source, result=result)
            if credential.verify:
                for result in ("success", "rejected", "unavailable"):
                    self.credential_verifications.labels(credential=credential.name, result=result)
        for result in ("success", "failure"):
            self.config_reloads.labels(result=result)

    def forget(self, specs: Iterable[str], credentials_kept: set[str]) -> None:
        """Drop the series of specs and credentials a reload removed: stale gauges would page forever."""
        for spec in specs:
            for gauge in (self.last_success, self.sync_duration):
                _remove(gauge, secret=spec)
            for state in ("in_sync", "failed", "conflict"):
                _remove(self.namespaces, secret=spec, state=state)
        for labels in list(self.credential_expiry._metrics):
            if labels[0] not in credentials_kept:
                _remove(self.credential_expiry, credential=labels[0])


def _remove(metric: Gauge | Histogram, **labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels.values())
