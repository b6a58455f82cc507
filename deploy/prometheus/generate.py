"""Write prometheusrule.yaml (a Prometheus Operator PrometheusRule) from rules/syncd.rules.yaml.

The plain rules file is the source of truth; this wraps its `groups:` under `spec:` as text, so
the comments and the layout of every expression carry over unchanged.

    python deploy/prometheus/generate.py          # rewrite prometheusrule.yaml
    python deploy/prometheus/generate.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules" / "syncd.rules.yaml"
TARGET = HERE / "prometheusrule.yaml"
# The Helm chart can only template files inside itself, so it carries a verbatim copy.
CHART_COPY = HERE.parents[1] / "deploy" / "helm" / "syncd" / "files" / "syncd.rules.yaml"

HEADER = """\
# GENERATED from rules/syncd.rules.yaml by generate.py: edit that file, then run
#     python deploy/prometheus/generate.py
# Prometheus Operator (kube-prometheus-stack) picks this up when its ruleSelector matches the
# labels below; kube-prometheus-stack's default selector wants `release: <helm release name>`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: syncd
  namespace: syncd
  labels:
    app.kubernetes.io/name: syncd
    app.kubernetes.io/component: monitoring
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule text for a rules file: everything from its `groups:` line, indented by 2."""
    lines = rules_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("groups:")), None)
    if start is None:
        raise ValueError(f"{RULES} has no top-level `groups:`")
    body = "".join(f"  {line}\n" if line.strip() else "\n" for line in lines[start:])
    return HEADER + body


def main(argv: list[str]) -> int:
    rules = RULES.read_text(encoding="utf-8")
    outputs = {TARGET: render(rules), CHART_COPY: rules}
    if "--check" in argv:
        stale = [path for path, text in outputs.items() if path.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path} is out of date: run python deploy/prometheus/generate.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
