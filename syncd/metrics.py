"""Every metric of SPEC §5, defined once and registered into a registry passed in.

No label ever carries a namespace name (cardinality) or a secret value.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from syncd import __version__


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
