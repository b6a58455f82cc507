"""The alerting rules, their promtool unit tests, the runbook links and the Grafana dashboard.

Needs `promtool` (Debian package `prometheus`, installed by `make deps`): a missing promtool fails
these tests rather than skipping them, so that the alerts are never shipped untested.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from syncd.engine.metrics import Metrics
from tests.metric_names import SPEC_METRICS

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "syncd.rules.yaml"
PROMETHEUS_RULE = PROMETHEUS_DIR / "prometheusrule.yaml"
SERVICE_MONITOR = PROMETHEUS_DIR / "servicemonitor.yaml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "syncd-dashboard.json"

ALERTS = {
    "SyncdSyncFailing",
    "SyncdNoRecentSuccess",
    "SyncdCredentialExpiringSoon",
    "SyncdNamespacesFailing",
    "SyncdNamespacesInConflict",
    "SyncdCredentialRejected",
    "SyncdDown",
    "SyncdNoLeader",
    "SyncdConfigReloadFailing",
    "SyncdImagePullsFailing",
    "SyncdAdmissionErrors",
    "SyncdPodRepairsFailing",
}
METRIC_NAME = re.compile(r"\bsyncd_[a-z_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (make deps)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerting_rules() -> list[dict[str, Any]]:
    groups = load_yaml(RULES_FILE)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def exported_metric_names() -> set[str]:
    """Every sample name syncd's registry exposes (counters with `_total`, histograms' series)."""
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("", "_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


def dashboard_exprs(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for panel in panels:
        yield from dashboard_exprs(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


# -- promtool -----------------------------------------------------------------------------------


def test_promtool_accepts_the_rules_file() -> None:
    result = run_promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerting_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests/"
    result = run_promtool("test", "rules", *(str(path) for path in RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        test_file = load_yaml(path)
        assert test_file["rule_files"] == ["../rules/syncd.rules.yaml"], path
        for case in (c for test in test_file["tests"] for c in test.get("alert_rule_test", [])):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"


# -- the rules themselves -----------------------------------------------------------------------


def test_the_alerts_asked_for_exist() -> None:
    assert {rule["alert"] for rule in alerting_rules()} == ALERTS


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        url = annotations["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/runbooks.md", url
        assert anchor == name.lower(), url
        assert anchor in anchors, f"{url}: docs/runbooks.md has no heading with that anchor"


def test_every_runbook_section_belongs_to_an_alert() -> None:
    headings = re.findall(r"^## (Syncd\w+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert set(headings) == ALERTS
    assert len(headings) == len(set(headings))


def test_rules_only_use_metrics_syncd_exports() -> None:
    known = exported_metric_names()
    for rule in alerting_rules():
        used = set(METRIC_NAME.findall(rule["expr"]))
        assert used <= known, f"{rule['alert']}: unknown metrics {sorted(used - known)}"


def test_prometheusrule_holds_the_same_rules_as_the_plain_file() -> None:
    resource = load_yaml(PROMETHEUS_RULE)
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["name"] == "syncd"
    assert resource["spec"] == load_yaml(RULES_FILE)
    # Byte for byte what the generator writes, so that a hand edit of the generated file shows up.
    check = subprocess.run(
        [sys.executable, str(PROMETHEUS_DIR / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_servicemonitor_scrapes_the_metrics_port_of_the_syncd_service() -> None:
    monitor = load_yaml(SERVICE_MONITOR)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "syncd"}}
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"


# -- the dashboard ------------------------------------------------------------------------------


def test_dashboard_is_valid_json_and_charts_every_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [expr for _title, expr in dashboard_exprs(dashboard["panels"])]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    metrics = set(SPEC_METRICS) | {n for n in exported_metric_names() if not n.endswith(("_bucket", "_sum", "_count"))}
    uncharted = [m for m in sorted(metrics) if not any(u == m or u.startswith(f"{m}_") for u in used)]
    assert uncharted == []
    unknown = used - exported_metric_names()
    assert unknown == set(), "the dashboard queries metrics syncd does not export"


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "syncd"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: {target['expr']}"
