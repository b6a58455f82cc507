"""A real Prometheus (Debian `prometheus`, `make deps`) scraping syncd with the shipped alert rules.

The rules are deploy/prometheus/rules/syncd.rules.yaml, with their windows and `for` shortened to a
test's or a soak's timescale by `shipped_rules`: the expressions stay the shipped ones, so a rule
that cannot fire at all still fails where it is evaluated.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from harness.process import HarnessError, Server, free_port

RULES_FILE = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules" / "syncd.rules.yaml"


def shipped_rules(**rewrites: Mapping[str, str]) -> dict[str, Any]:
    """The shipped rules, with text replaced in the named alerts' `expr` (key "for": their `for`)."""
    rules: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for name, replacements in rewrites.items():
        matching = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == name]
        if not matching:
            raise HarnessError(f"no alert {name} in {RULES_FILE}")
        for rule in matching:
            for old, new in replacements.items():
                if old == "for":
                    rule["for"] = new
                elif old in rule["expr"]:
                    rule["expr"] = rule["expr"].replace(old, new)
                else:
                    raise HarnessError(f"{name}: {old!r} is no longer in its expr; update the caller's rewrites")
    return rules


class Prometheus:
    """One Prometheus scraping `targets` (HOST:PORT) every second and evaluating `rules` as often."""

    def __init__(
        self, state_dir: Path, targets: list[str], rules: dict[str, Any], *, scrape_timeout: str = "1s"
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise HarnessError("prometheus is not installed: apt-get install prometheus (make deps)")
        self.binary = binary
        self.dir = state_dir / "prometheus"
        self.server = Server("prometheus", state_dir)
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        rules_path = self.dir / "syncd.rules.yaml"
        rules_path.write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": scrape_timeout, "evaluation_interval": "1s"},
            "rule_files": [str(rules_path)],
            "scrape_configs": [{"job_name": "syncd", "static_configs": [{"targets": targets}]}],
        }
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))

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
        self.server.start(argv)
        self.server.wait_healthy(lambda: requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200, 30)
        return self

    def stop(self) -> None:
        self.server.stop()

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a /api/v1 answer; a Prometheus that exited fails with its log."""
        process = self.server.process
        if process is not None and process.poll() is not None:
            raise HarnessError(f"prometheus exited with {process.returncode}:\n{self.server.log_tail()}")
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        if body.get("status") != "success":
            raise HarnessError(f"prometheus /api/v1/{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return [a for a in found if name is None or a["labels"]["alertname"] == name]

    def alert_rules(self) -> list[dict[str, Any]]:
        return [r for g in self.api("rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]

    def rule_errors(self) -> list[str]:
        """`name: lastError` of every rule whose last evaluation failed."""
        return [
            f"{r['name']}: {r.get('lastError')}"
            for g in self.api("rules")["groups"]
            for r in g["rules"]
            if r.get("health") == "err"
        ]
