"""PullSecretSync on the real apiserver: what `kubectl get pullsync` and `kubectl wait` show while
syncd runs, OpenBao stops and comes back, a token nears its expiry, and a spec leaves the config.

The CRD is installed for the session (tests/conftest.py), as Helm and Kustomize install it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, cast

import hvac
import pytest
import yaml
from kubernetes import client

from harness.kubectl import kubectl
from harness.syncd_process import Start, SyncdProcess, new_namespace
from harness.vault import Vault
from harness.wait import wait_until
from syncd.cli.commands import main

pytestmark = pytest.mark.integration
FAST = {"interval": "2s", "jitter": "0s", "retry": {"min": "1s", "max": "2s"}}
GROUP, VERSION, PLURAL = "syncd.io", "v1alpha1", "pullsecretsyncs"


def _jwt(expires_in: float) -> str:
    def segment(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    exp = int(time.time() + expires_in)
    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment({'exp': exp, 'sub': 'robot'})}.c2lnbmF0dXJl"


def _config(vault: Vault, tmp_path: Path, prefix: str, **extra: Any) -> dict[str, Any]:
    token_file = tmp_path / "vault-token"
    token_file.write_text(vault.token)
    return {
        "vault": {
            "address": vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": "robot"}}],
        "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"selector": f"pull={prefix}"}}],
        "schedule": FAST,
        **extra,
    }


def _object(custom: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    try:
        found = cast(dict[str, Any], custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name))
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def _condition(custom: client.CustomObjectsApi, name: str, kind: str) -> tuple[str, str] | None:
    found = _object(custom, name) or {}
    for condition in found.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return condition["status"], condition["reason"]
    return None


def _events(core_v1: client.CoreV1Api, name: str) -> list[client.CoreV1Event]:
    found = core_v1.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
    return list(found)


def _status_from_cluster(kubeconfig: Path, instance: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`syncd status --from-cluster`: no config file, only the objects."""
    capsys.readouterr()
    code = main(
        ["status", "--from-cluster", "--instance", instance, "--kubeconfig", str(kubeconfig), "--output", "json"]
    )
    return code, capsys.readouterr().out


def _writes(syncd: SyncdProcess) -> float:
    return syncd.metric("syncd_status_writes_total", result="written")


def test_kubectl_shows_ready_then_source_trouble_then_recovery(
    private_vault: Vault,
    core_v1: client.CoreV1Api,
    kube_api: client.ApiClient,
    prefix: str,
    instance: str,
    tmp_path: Path,
    start_syncd: Start,
    stack: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vault = hvac.Client(url=private_vault.address, token=private_vault.token)
    password = "pullsync-robot-password-1"
    vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": password})
    for suffix in ("a", "b"):
        new_namespace(core_v1, f"{prefix}-{suffix}", {"pull": prefix})
    syncd = start_syncd(_config(private_vault, tmp_path, prefix))
    custom, name, kubeconfig = client.CustomObjectsApi(kube_api), f"{instance}.regcred", stack.kube.kubeconfig

    # Ready, as `kubectl wait` and the printer columns see it (the object appears with the first status).
    wait_until(lambda: _object(custom, name) is not None, 30, "the PullSecretSync object")
    waited = kubectl("wait", "--for=condition=Ready", f"pullsync/{name}", "--timeout=30s", kubeconfig=kubeconfig)
    assert waited.returncode == 0, waited.stderr
    table = kubectl("get", "pullsync", name, kubeconfig=kubeconfig)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "READY", "IN", "SYNC", "SELECTED"]
    assert row.split()[:4] == [name, "True", "2", "2"]
    status = (_object(custom, name) or {})["status"]
    assert status["instance"] == instance
    assert status["credentials"][0]["name"] == "robot"
    assert password not in json.dumps(_object(custom, name))
    code, out = _status_from_cluster(kubeconfig, instance, capsys)
    assert code == 0, out
    [row] = json.loads(out)
    assert (row["name"], row["ready"], row["in_sync"], row["selected"]) == (name, "True", 2, 2)
    assert password not in out

    # Idle: syncs every 2 s that change nothing write no status.
    writes = _writes(syncd)
    runs = syncd.metric("syncd_sync_runs_total", secret="regcred", result="success")
    wait_until(
        lambda: syncd.metric("syncd_sync_runs_total", secret="regcred", result="success") >= runs + 3, 20, "3 syncs"
    )
    assert _writes(syncd) == writes

    # OpenBao stopped: SourceAvailable and Ready turn False within an interval or two, with an Event.
    private_vault.stop()
    wait_until(
        lambda: _condition(custom, name, "SourceAvailable") == ("False", "SourceError"), 20, "SourceAvailable False"
    )
    assert _condition(custom, name, "Ready") == ("False", "SourceError")
    wait_until(lambda: any(e.reason == "ReadyFalse" for e in _events(core_v1, name)), 10, "a ReadyFalse Event")
    described = kubectl("describe", "pullsync", name, kubeconfig=kubeconfig)
    assert "ReadyFalse" in described.stdout, described.stdout[-2000:]
    code, out = _status_from_cluster(kubeconfig, instance, capsys)
    assert code == 1
    assert json.loads(out)[0]["reason"] == "SourceError"

    # Back (a dev server restarts empty: the data too): Ready again, with an Event.
    private_vault.start()
    vault = hvac.Client(url=private_vault.address, token=private_vault.token)
    vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": password})
    wait_until(lambda: _condition(custom, name, "Ready") == ("True", "Ready"), 30, "Ready True again")
    wait_until(lambda: any(e.reason == "ReadyTrue" for e in _events(core_v1, name)), 10, "a ReadyTrue Event")


def test_an_expiring_token_turns_expiring_soon_and_a_removed_spec_takes_its_object(
    private_vault: Vault,
    core_v1: client.CoreV1Api,
    kube_api: client.ApiClient,
    prefix: str,
    instance: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    vault = hvac.Client(url=private_vault.address, token=private_vault.token)
    # A stored token that says it expires in 40 s: fetching it again does not move its expiry.
    token = _jwt(40)
    vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": token})
    new_namespace(core_v1, f"{prefix}-a", {"pull": prefix})
    schedule = {**FAST, "refresh_before_expiry": 0.8}  # overdue 8 s after it was first held
    config = _config(private_vault, tmp_path, prefix, schedule=schedule)
    config["secrets"].append({"name": "other", "credentials": ["robot"], "namespaces": {"names": [f"{prefix}-a"]}})
    syncd = start_syncd(config)
    custom, name = client.CustomObjectsApi(kube_api), f"{instance}.regcred"
    wait_until(lambda: _condition(custom, name, "Ready") == ("True", "Ready"), 30, "Ready")
    assert _condition(custom, name, "ExpiringSoon") == ("False", "NotExpiring")
    wait_until(lambda: _condition(custom, name, "ExpiringSoon") == ("True", "RefreshOverdue"), 30, "ExpiringSoon")
    expires = (_object(custom, name) or {})["status"]["expiresAt"]
    assert dt.datetime.fromisoformat(expires) > dt.datetime.now(dt.UTC)

    # `other` leaves the config: its object goes, regcred's stays.
    assert _object(custom, f"{instance}.other") is not None
    config["secrets"] = config["secrets"][:1]
    syncd.config_path.write_text(
        yaml.safe_dump({**config, "instance": instance, "server": {"address": f"127.0.0.1:{syncd.port}"}})
    )
    wait_until(lambda: _object(custom, f"{instance}.other") is None, 20, "the removed spec's object deleted")
    assert _object(custom, name) is not None
