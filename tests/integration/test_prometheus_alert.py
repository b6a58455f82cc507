"""A real Prometheus scrapes a real `syncd run` with the rules from deploy/prometheus.

The sync-failure alert must reach `firing` when Vault goes away and clear when it is back; every
rule must evaluate without error against syncd's real series, and stay quiet while all is well;
and every query of the Grafana dashboard must be valid PromQL that finds syncd's series.

Prometheus is the Debian `prometheus` package (`make deps`); a missing binary fails the test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.prometheus import Prometheus, shipped_rules
from harness.syncd_process import Start, SyncdProcess, base_config, has_secret, new_namespace
from harness.vault import Vault
from harness.wait import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "syncd-dashboard.json"
FAST_SCHEDULE = {"interval": "2s", "jitter": "0s", "retry": {"min": "1s", "max": "2s"}}
ALERT_DEADLINE = 60.0


@pytest.fixture
def prometheus_servers() -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for server in started:
        server.stop()


def wait_until_rules_evaluated(prometheus: Prometheus, syncd: SyncdProcess) -> None:
    """syncd scraped, and every alerting rule evaluated at least once since."""
    wait_until(lambda: prometheus.query(f'up{{instance="127.0.0.1:{syncd.port}"}} == 1') != [], 20, "syncd scraped")
    seen = {r["name"] + r["labels"].get("severity", ""): r.get("lastEvaluation") for r in prometheus.alert_rules()}
    assert len(seen) == len(prometheus.alert_rules()) > 0

    def evaluated_again() -> bool:
        return all(
            seen[r["name"] + r["labels"].get("severity", "")] != r.get("lastEvaluation")
            for r in prometheus.alert_rules()
        )

    wait_until(evaluated_again, 20, "every alerting rule evaluated after the first scrape", interval=0.5)


def test_sync_failing_alert_fires_when_vault_stops_and_clears_when_it_is_back(
    stack: Stack,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
    prometheus_servers: list[Prometheus],
    private_vault: Vault,
) -> None:
    vault = private_vault
    login = {"username": "robot", "password": "p-1"}
    path = f"alert/{prefix}"
    hvac.Client(url=vault.address, token=vault.token).secrets.kv.v2.create_or_update_secret(path, secret=login)
    new_namespace(core_v1, f"{prefix}-a", {"pull": prefix})
    token_file = tmp_path / "private-vault-token"
    token_file.write_text(vault.token)
    config = base_config(stack, tmp_path, path, prefix)
    config["vault"] = {
        "address": vault.address,
        "allow_http": True,
        "auth": {"method": "token", "token_file": str(token_file)},
    }
    config["schedule"] = FAST_SCHEDULE
    syncd = start_syncd(config)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-a"), 15, "the first Secret")

    # SyncdSyncFailing at test scale: a 15 s window and 3 s of `for` instead of 15 m and 15 m.
    rules = shipped_rules(SyncdSyncFailing={"[15m]": "[15s]", "offset 15m": "offset 15s", "< 900": "< 15", "for": "3s"})
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{syncd.port}"], rules).start()
    prometheus_servers.append(prometheus)
    wait_until_rules_evaluated(prometheus, syncd)
    unhealthy = [(r["name"], r.get("lastError")) for r in prometheus.alert_rules() if r["health"] != "ok"]
    assert unhealthy == []
    assert prometheus.alerts() == [], "an alert is pending or firing while syncd is healthy"
    before = core_v1.read_namespaced_secret("regcred", f"{prefix}-a")

    vault.stop()
    stopped = time.monotonic()

    def state() -> str | None:
        found = prometheus.alerts("SyncdSyncFailing")
        return found[0]["state"] if found else None

    wait_until(lambda: state() == "firing", ALERT_DEADLINE, "SyncdSyncFailing firing", interval=0.5)
    to_firing = time.monotonic() - stopped
    [alert] = prometheus.alerts("SyncdSyncFailing")
    assert alert["labels"] == {
        "alertname": "SyncdSyncFailing",
        "job": "syncd",
        "secret": "regcred",
        "severity": "warning",
    }
    assert alert["annotations"]["runbook_url"] == "docs/runbooks.md#syncdsyncfailing"
    assert '"message": "sync failed: credential \'robot\': cannot connect to Vault' in syncd.log()
    # Nothing was blanked or rewritten while the source was down.
    during = core_v1.read_namespaced_secret("regcred", f"{prefix}-a")
    assert during.metadata is not None
    assert before.metadata is not None
    assert during.metadata.resource_version == before.metadata.resource_version

    vault.start()  # the same port; a dev server comes back empty
    hvac.Client(url=vault.address, token=vault.token).secrets.kv.v2.create_or_update_secret(path, secret=login)
    restarted = time.monotonic()
    wait_until(lambda: state() is None, ALERT_DEADLINE, "SyncdSyncFailing to clear", interval=0.5)
    to_resolved = time.monotonic() - restarted
    assert prometheus.alerts() == []
    print(f"SyncdSyncFailing firing {to_firing:.1f}s after Vault stopped, cleared {to_resolved:.1f}s after restart")


def test_every_dashboard_query_is_valid_and_finds_syncds_series(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_path: str,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
    prometheus_servers: list[Prometheus],
) -> None:
    new_namespace(core_v1, f"{prefix}-d", {"pull": prefix})
    config = base_config(stack, tmp_path, vault_path, prefix)
    config["schedule"] = FAST_SCHEDULE
    config["credentials"][0]["lifetime"] = "1h"  # gives syncd_credential_expiry_timestamp_seconds
    syncd = start_syncd(config)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-d"), 15, "the first Secret")
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{syncd.port}"], shipped_rules()).start()
    prometheus_servers.append(prometheus)
    wait_until_rules_evaluated(prometheus, syncd)
    # rate() and histogram_quantile() need a few scrapes of the counters.
    wait_until(lambda: prometheus.query("count_over_time(syncd_leader[1m]) >= 5") != [], 20, "five scrapes")

    exported = {
        m.group(1) for m in re.finditer(r"^(syncd_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]", syncd.metrics(), re.M)
    }
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    empty, checked = [], 0
    for panel in panels:
        for target in panel.get("targets", []):
            expr = _substitute(target["expr"])
            result = prometheus.query(expr)  # fails on invalid PromQL
            checked += 1
            metrics = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bsyncd_[a-z_]+", expr)}
            if metrics <= exported and not result:
                empty.append((panel["title"], expr))
    assert checked >= 15
    assert empty == [], "queries that find nothing although syncd exports their metrics"
    # A healthy syncd under the real rules: nothing pending or firing.
    assert prometheus.alerts() == []


def _substitute(expr: str) -> str:
    """Grafana's variables as a dashboard with everything selected would send them."""
    for variable, value in {
        "$__rate_interval": "1m",
        "$job": "syncd",
        "$secret": ".*",
        "$credential": ".*",
    }.items():
        expr = expr.replace(variable, value)
    return expr
