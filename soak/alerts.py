"""The shipped alert rules, evaluated by a real Prometheus on its scrapes of both replicas.

The windows are shortened to the soak's timescale (minutes of outage, not hours), exactly as
tests/integration/test_prometheus_alert.py does: the expressions are the shipped ones with
their ranges and `for` replaced, so a rule that cannot fire at all still fails here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from harness.process import free_port

RULES_FILE = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules" / "syncd.rules.yaml"
WINDOW = "5s"
SCALED = {
    "SyncdSyncFailing": {"[15m]": f"[{WINDOW}]", "offset 15m": f"offset {WINDOW}", "< 900": "< 5", "for": "2s"},
    "SyncdDown": {"for": "3s"},
}


def scaled_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            for old, new in SCALED.get(rule.get("alert", ""), {}).items():
                if old == "for":
                    rule["for"] = new
                elif old in rule["expr"]:
                    rule["expr"] = rule["expr"].replace(old, new)
                else:
                    raise RuntimeError(f"{rule['alert']}: {old!r} is no longer in its expr; update soak/alerts.py")
    return rules


@dataclass
class AlertState:
    at: float
    alert: str
    state: str
    secret: str
    severity: str


class Prometheus:
    def __init__(self, directory: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus (make deps)")
        self.binary, self.dir, self.port = binary, directory, free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rules.yaml").write_text(yaml.safe_dump(scaled_rules()))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(directory / "rules.yaml")],
            "scrape_configs": [{"job_name": "syncd", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self.states: list[AlertState] = []

    def start(self) -> None:
        argv = [
            self.binary,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with (self.dir / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("Prometheus not ready after 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)

    def record(self) -> None:
        try:
            body = requests.get(f"http://127.0.0.1:{self.port}/api/v1/alerts", timeout=2).json()
        except (requests.RequestException, ValueError):
            return
        now = time.time()
        for alert in body.get("data", {}).get("alerts", []):
            labels = alert.get("labels", {})
            self.states.append(
                AlertState(
                    now,
                    labels.get("alertname", ""),
                    alert.get("state", ""),
                    labels.get("secret", ""),
                    labels.get("severity", ""),
                )
            )

    def rule_errors(self) -> list[str]:
        body = requests.get(f"http://127.0.0.1:{self.port}/api/v1/rules", timeout=5).json()
        return [
            f"{r['name']}: {r.get('lastError')}"
            for g in body["data"]["groups"]
            for r in g["rules"]
            if r.get("health") == "err"
        ]


def run_recorder(prometheus: Prometheus, stop: threading.Event, every: float = 1.0) -> None:
    while not stop.wait(every):
        prometheus.record()


# What each fault kind must make fire: (alert, secret spec or "" for any).
EXPECTED = {
    "openbao-restart": [("SyncdSyncFailing", "regcred-kv")],
    "openbao-empty": [("SyncdSyncFailing", "regcred-kv")],
    "helper-hang": [("SyncdSyncFailing", "regcred-helper")],
    "leader-sigstop": [("SyncdDown", "")],
}


def judge_alerts(states: list[AlertState], faults: list[dict[str, Any]], clear_within: float) -> list[dict[str, Any]]:
    """Per fault: did the expected alerts fire during it, and had every alert cleared `clear_within` after it?"""
    verdicts = []
    for index, fault in enumerate(faults):
        if fault.get("cleared") is None:
            continue
        started, cleared = fault["started"], fault["cleared"]
        following = faults[index + 1]["started"] if index + 1 < len(faults) else float("inf")
        window = [s for s in states if started <= s.at <= cleared + 10 and s.state == "firing"]
        fired = {(s.alert, s.secret) for s in window}
        missing = [
            a
            for a, secret in EXPECTED.get(fault["kind"], [])
            if not any(f[0] == a and (not secret or f[1] == secret) for f in fired)
        ]
        late = [s for s in states if cleared + clear_within <= s.at < following and s.state == "firing"]
        verdicts.append(
            {
                "kind": fault["kind"],
                "started": started,
                "fired": sorted({a for a, _ in fired}),
                "expected_missing": missing,
                "still_firing_after": sorted({s.alert for s in late}),
            }
        )
    return verdicts
