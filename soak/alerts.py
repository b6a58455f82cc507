"""The shipped alert rules, evaluated by a real Prometheus on its scrapes of both replicas.

The windows are shortened to the soak's timescale (minutes of outage, not hours), exactly as
tests/integration/test_prometheus_alert.py does: the expressions are the shipped ones with
their ranges and `for` replaced, so a rule that cannot fire at all still fails here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

import harness.prometheus
from harness.prometheus import shipped_rules

WINDOW = "5s"
SCALED = {
    "SyncdSyncFailing": {"[15m]": f"[{WINDOW}]", "offset 15m": f"offset {WINDOW}", "< 900": "< 5", "for": "2s"},
    "SyncdDown": {"for": "3s"},
}


def scaled_rules() -> dict[str, Any]:
    return shipped_rules(**SCALED)


@dataclass
class AlertState:
    at: float
    alert: str
    state: str
    secret: str
    severity: str


class Prometheus(harness.prometheus.Prometheus):
    """The harness's Prometheus on the soak's scaled rules, keeping every alert state it reports."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        # Under the 1 s interval: each scrape ends (or times out) before the next is due.
        super().__init__(directory, targets, scaled_rules(), scrape_timeout="900ms")
        self.states: list[AlertState] = []

    def record(self) -> None:
        try:
            body = requests.get(f"{self.url}/api/v1/alerts", timeout=2).json()
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
