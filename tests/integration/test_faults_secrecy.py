"""Secrecy under faults, session-wide: no secret value the fault tests used appears anywhere syncd
wrote for them.

Every fault module (tests/integration/test_faults_*.py) registers the secret values it hands to
syncd (`faults.secret_value`) and records what syncd produced: `once` output and logs (DEBUG),
the daemon's log and /metrics, exception texts, Events; `faults.fault_capture` searches what each
test recorded right after it. This module adds a scenario of its own (every kind of source
failing at once, with `once`, `--dry-run`, `--output json`, `status`, `check-config`, a daemon's
/metrics, direct exception tracebacks with their chained causes, every Event of the cluster), then
searches the whole ledger of the session so far for each value: raw, JSON-escaped, base64, and
base64 of the `username:password` login that a Secret carries.

tests/integration/test_secrecy.py covers the happy path at DEBUG; this covers the failure paths,
where values are most likely to escape (an error echoing what it could not parse).
"""

from __future__ import annotations

import base64
import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, generate_latest

from harness import Stack
from harness.syncd_process import Start, has_secret
from syncd.app import ClusterOptions, build_reconciler
from syncd.config import load_config
from syncd.core.errors import SourceError
from syncd.sources.factory import build_sources
from tests.integration.conftest import RunSyncd, WriteConfig
from tests.integration.faults import (
    CAPTURED,
    RAN,
    SECRET_VALUES,
    TEXTS,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    forms_found,
    record,
    record_daemon,
    record_events,
    secret_value,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]


def _helper(bin_dir: Path, name: str, body: str) -> None:
    script = bin_dir / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


def _scenario(tmp_path: Path, vault_client: hvac.Client, prefix: str) -> dict[str, Any]:
    """One config where every kind of source fails in its own way, each failure holding a secret, plus a good spec."""
    kv = vault_client.secrets.kv.v2
    good = secret_value("secrecy-good")
    kv.create_or_update_secret(f"secrecy/{prefix}/good", secret={"username": "robot", "password": good})
    control = secret_value("secrecy-control", value=secret_value("secrecy-control") + "\x1b[2J")
    kv.create_or_update_secret(f"secrecy/{prefix}/control", secret={"username": "robot", "password": control})
    nested = {"token": secret_value("secrecy-nested")}
    kv.create_or_update_secret(f"secrecy/{prefix}/nested", secret={"username": "robot", "password": nested})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = json.dumps(
        {"ServerURL": "r.example", "Username": "AWS", "Secret": secret_value("secrecy-answer", username="AWS")}
    )
    _helper(bin_dir, "answers-then-fails", f"printf '%s' '{answer}'\nexit 3\n")
    _helper(bin_dir, "garbage", f"printf '%s\\n' 'Secret: {secret_value('secrecy-garbage')}' '{answer}'\n")
    _helper(bin_dir, "killed", f"printf '%s' '{answer}'\nkill -KILL $$\n")
    no_colon = base64.b64encode(secret_value("secrecy-no-colon").encode()).decode()
    bad_file = tmp_path / "bad-config.json"
    bad_file.write_text(json.dumps({"auths": {"quay.io": {"auth": no_colon}}}))
    good_file = tmp_path / "good-config.json"
    file_password = secret_value("secrecy-file", username="fileuser")
    good_file.write_text(
        json.dumps({"auths": {"quay.io": {"auth": base64.b64encode(f"fileuser:{file_password}".encode()).decode()}}})
    )

    def vault(name: str) -> dict[str, Any]:
        return {"name": name, "registry": "ghcr.io", "vault": {"kv": 2, "path": f"secrecy/{prefix}/{name}"}}

    def helper(name: str) -> dict[str, Any]:
        return {"name": name, "registry": "r.example", "helper": name, "helper_timeout": "2s"}

    credentials = [vault("good"), vault("control"), vault("nested"), vault("absent")]
    credentials += [helper("answers-then-fails"), helper("garbage"), helper("killed")]
    credentials += [
        {"name": "bad-file", "docker_config": str(bad_file), "registries": ["quay.io"]},
        {"name": "good-file", "docker_config": str(good_file), "registries": ["quay.io"]},
    ]
    selection = {"patterns": [f"{prefix}-*"]}
    secrets = [{"name": "good", "credentials": ["good", "good-file"], "namespaces": selection}]
    secrets += [
        {"name": f"bad-{c['name']}", "credentials": [c["name"]], "namespaces": selection}
        for c in credentials
        if not c["name"].startswith("good")
    ]
    schedule = {"retry": {"min": "5m", "max": "5m"}}  # the daemon below attempts each spec once
    document = {"vault": {}, "credentials": credentials, "secrets": secrets, "schedule": schedule}
    return document | {"path": f"{bin_dir}{os.pathsep}"}


def test_no_secret_value_of_any_fault_test_reaches_output_logs_metrics_events_or_exceptions(
    stack: Stack,
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    start_syncd: Start,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    here = request.node.nodeid
    document = _scenario(tmp_path, vault_client, prefix)
    path = document.pop("path")
    monkeypatch.setenv("PATH", path + os.environ["PATH"])
    make_namespaces(f"{prefix}-a", f"{prefix}-b")
    config = write_config(document)

    runs = [
        run_syncd("check-config", config=config),
        run_syncd("once", "--dry-run", config=config),
        run_syncd("once", config=config),
        run_syncd("once", "--output", "json", config=config),
        run_syncd("status", config=config),
        run_syncd("status", "--output", "json", config=config),
    ]
    record(here, *(r.out + r.err for r in runs))
    assert runs[2].code == 1
    assert has_secret(core_v1, f"{prefix}-a", "good")
    assert sum(line.startswith("  error: credential ") for line in runs[2].out.splitlines()) == 7

    # The same through the library: results, their repr, metrics text, and each source's exception
    # with its whole chain of causes (a parser's error keeps its input, and must not be chained).
    registry = CollectorRegistry()
    loaded = load_config(config)
    results = build_reconciler(loaded, ClusterOptions(str(stack.kube.kubeconfig)), registry).sync_all()
    record(here, repr(results), generate_latest(registry).decode(), *(e for r in results for e in r.errors))
    sources = build_sources(loaded)
    for credential in loaded.credentials:
        try:
            sources[credential.source].fetch(credential)
        except SourceError as error:
            record(here, "".join(traceback.format_exception(error)), repr(error))

    # A daemon with the same config: its log (DEBUG) and /metrics after its first attempts.
    assert document["vault"]  # write_config filled in the session's Vault and a token file
    syncd = start_syncd(document, env={"PATH": path + os.environ["PATH"]})
    syncd.wait_ready(timeout=30)
    for credential in loaded.credentials:  # each failure is counted where an alert rule looks for it
        failed = 0 if credential.name.startswith("good") else 1
        labels = {"credential": credential.name, "source": credential.source}
        assert syncd.metric("syncd_source_requests_total", **labels, result="failure") == failed
        assert syncd.metric("syncd_source_requests_total", **labels, result="success") == 1 - failed
        if failed:
            assert syncd.metric("syncd_sync_runs_total", secret=f"bad-{credential.name}", result="failure") == 1
    record_daemon(here, syncd)
    record_events(here, core_v1)  # every Event of the session's cluster, all fault tests included
    record(here, caplog.text)

    # Every fault test that ran before this one in this process had its texts taken into the
    # ledger (a test that produced none counts: the check is that none escaped the capture).
    # This process's tests only: under pytest-xdist the other worker's are in another ledger.
    ran_before = {
        nodeid for nodeid in RAN[: RAN.index(here)] if Path(nodeid.split("::")[0]).name.startswith("test_faults_")
    }
    assert ran_before <= set(CAPTURED), sorted(ran_before - set(CAPTURED))
    recorded = {where.split("::")[0] for where, _ in TEXTS}
    print(
        f"searched {len(TEXTS)} texts ({sum(len(t) for _, t in TEXTS) / 1e6:.1f} MB) from {len(recorded)} modules "
        f"for {len(set(SECRET_VALUES.values()))} secret values in {len(SECRET_VALUES)} forms"
    )
    assert forms_found(TEXTS) == []
