"""A real Prometheus scrapes a real `syncd run` with the rules from deploy/prometheus.

The sync-failure alert must reach `firing` when Vault goes away and clear when it is back; every
rule must evaluate without error against syncd's real series, and stay quiet while all is well;
and every query of the Grafana dashboard must be valid PromQL that finds syncd's series.

Prometheus is the Debian `prometheus` package (`make deps`); a missing binary fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
import yaml
from kubernetes import client

from harness import Stack
from harness.process import free_port
from harness.vault import Vault
from harness.wait import wait_until
from tests.integration.daemon import Start, SyncdProcess, base_config, has_secret, new_namespace

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules" / "syncd.rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "syncd-dashboard.json"
FAST_SCHEDULE = {"interval": "2s", "jitter": "0s", "retry": {"min": "1s", "max": "2s"}}
ALERT_DEADLINE = 60.0


class Prometheus:
    """One Prometheus server in its own process group, scraping the given targets every second."""

    def __init__(self, directory: Path, targets: list[str], rules: dict[str, Any]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: apt-get install prometheus (make deps)")
        self.binary = binary
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        rules_path = self.dir / "syncd.rules.yaml"
        rules_path.write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_path)],
            "scrape_configs": [{"job_name": "syncd", "static_configs": [{"targets": targets}]}],
        }
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.dir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        argv = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        wait_until(lambda: self._get("/-/ready").status_code == 200, 30, "Prometheus /-/ready")
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def _get(self, path: str, **params: str) -> requests.Response:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return requests.get(f"{self.url}{path}", params=params, timeout=5)

    def api(self, path: str, **params: str) -> Any:
        body = self._get(f"/api/v1/{path}", **params).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return [a for a in found if name is None or a["labels"]["alertname"] == name]

    def alert_rules(self) -> list[dict[str, Any]]:
        return [r for g in self.api("rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def deploy_rules(**rewrites: dict[str, str]) -> dict[str, Any]:
    """The rules from deploy/, with text replaced in the named alerts' `expr` and `for` (test timescale)."""
    rules: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for name, replacements in rewrites.items():
        matching = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == name]
        assert matching, f"no alert {name} in {RULES_FILE}"
        for rule in matching:
            for old, new in replacements.items():
                if old == "for":
                    rule["for"] = new
                    continue
                assert old in rule["expr"], f"{name}: {old!r} is no longer in its expr; update this test"
                rule["expr"] = rule["expr"].replace(old, new)
    return rules


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
) -> None:
    vault = Vault(tmp_path / "private-vault")
    vault.start()
    try:
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
        rules = deploy_rules(
            SyncdSyncFailing={"[15m]": "[15s]", "offset 15m": "offset 15s", "< 900": "< 15", "for": "3s"}
        )
        prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{syncd.port}"], rules).start()
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
    finally:
        vault.stop()


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
    prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{syncd.port}"], deploy_rules()).start()
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
