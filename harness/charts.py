"""The shipped manifests rendered as a user renders them: `helm template` of deploy/helm/syncd and
`kubectl kustomize` of deploy/kustomize, parsed into documents the tests look into."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness.builds import built
from harness.kubectl import kubectl

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART = REPO_ROOT / "deploy" / "helm" / "syncd"
KUSTOMIZE = REPO_ROOT / "deploy" / "kustomize"
RELEASE = "syncd"
Doc = dict[str, Any]


def helm_binary() -> str:
    """helm from the cache (scripts/helm-binary.sh, built from the Go module proxy if missing)."""
    return str(built("helm-binary.sh"))


def helm(helm_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """helm with its cache, config and data under `helm_home`, never the user's own."""
    env = {
        **os.environ,
        **{f"HELM_{kind}_HOME": str(helm_home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
    }
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False, env=env)


def render_text(helm_home: Path, *values: str, namespace: str = "syncd", crds: bool = False) -> str:
    """`key=value` is a --set; `json:key=JSON` a --set-json (lists whole, where --set would splice)."""
    sets = [
        arg
        for value in values
        for arg in (("--set-json", value.removeprefix("json:")) if value.startswith("json:") else ("--set", value))
    ]
    # crds/ (the PullSecretSync CRD) is installed by `helm install`; `template` shows it only when asked.
    with_crds = ["--include-crds"] if crds else []
    result = helm(helm_home, "template", RELEASE, str(CHART), "--namespace", namespace, *with_crds, *sets)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(helm_home: Path, *values: str, namespace: str = "syncd", crds: bool = False) -> list[Doc]:
    text = render_text(helm_home, *values, namespace=namespace, crds=crds)
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def _kustomized(variant: str) -> str:
    result = kubectl("kustomize", str(KUSTOMIZE / variant))
    assert result.returncode == 0, result.stderr
    return result.stdout


def kustomize(variant: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(_kustomized(variant)) if doc]


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """The one document of `kind` (and `name`): more or fewer fail the test."""
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def syncd_config(docs: list[Doc]) -> dict[str, Any]:
    """syncd's config as the chart's ConfigMap carries it."""
    return dict(yaml.safe_load(find(docs, "ConfigMap")["data"]["syncd.yaml"]))
