"""The metric vocabulary: typed recording methods, series created at 0, removed series gone."""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry

from syncd.config import Config, parse_config
from syncd.core.values import NamespaceState, RunResult, WriteOperation
from syncd.engine.metrics import Metrics, Verification


def _config(*specs: str) -> Config:
    return parse_config(
        {
            "credentials": [{"name": "robot", "registry": "ghcr.io", "helper": "pass", "verify": True}],
            "secrets": [{"name": s, "credentials": ["robot"], "namespaces": {"names": ["a"]}} for s in specs],
        }
    )


def test_start_at_zero_creates_every_series_the_recording_methods_write() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.start_at_zero(_config("regcred"))
    value = registry.get_sample_value
    for run in RunResult:
        assert value("syncd_sync_runs_total", {"secret": "regcred", "result": run}) == 0
    for verification in Verification:
        assert value("syncd_credential_verifications_total", {"credential": "robot", "result": verification}) == 0
    metrics.record_sync("regcred", RunResult.PARTIAL, 0.5, at=None)
    metrics.record_write("regcred", WriteOperation.PATCH_SERVICE_ACCOUNT, ok=False)
    metrics.record_verification("robot", Verification.REJECTED)
    assert value("syncd_sync_runs_total", {"secret": "regcred", "result": "partial"}) == 1
    assert value("syncd_last_success_timestamp_seconds", {"secret": "regcred"}) is None
    labels = {"secret": "regcred", "operation": "patch_service_account", "result": "failure"}
    assert value("syncd_secret_writes_total", labels) == 1
    assert value("syncd_credential_verifications_total", {"credential": "robot", "result": "rejected"}) == 1


def test_forget_drops_the_series_of_removed_specs_and_credentials_only() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for secret in ("gone", "kept"):
        metrics.record_sync(secret, RunResult.SUCCESS, 0.1, at=at)
        metrics.set_namespace_states(secret, {NamespaceState.IN_SYNC: 3})
    metrics.set_expiry("old", at)
    metrics.set_expiry("robot", at)
    metrics.forget(["gone"], {"robot"})
    value = registry.get_sample_value
    assert value("syncd_last_success_timestamp_seconds", {"secret": "gone"}) is None
    assert value("syncd_namespaces", {"secret": "gone", "state": "in_sync"}) is None
    assert value("syncd_namespaces", {"secret": "kept", "state": "in_sync"}) == 3
    assert value("syncd_namespaces", {"secret": "kept", "state": "conflict"}) == 0
    assert value("syncd_credential_expiry_timestamp_seconds", {"credential": "old"}) is None
    assert value("syncd_credential_expiry_timestamp_seconds", {"credential": "robot"}) == at.timestamp()
