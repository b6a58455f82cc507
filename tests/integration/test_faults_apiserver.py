"""The Kubernetes side failing under syncd: kube-apiserver killed mid-rollout, `syncd once` killed
mid-rollout, etcd restarted under a running daemon. Nothing may be lost or half-written, and the
next run (or, for the daemon, the next event) must repair everything without a restart.

These run on a cluster of this module's own (`PrivateKube`): killing the session's apiserver or
etcd would disturb the other tests, and a thousand namespaces would slow every later LIST.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kube_objects import default_service_account, pull_secret_names
from harness.syncd_process import has_secret, new_namespace
from harness.wait import wait_until
from tests.integration.faults import (
    Login,
    PrivateKube,
    add_unmanaged,
    check_secret,
    check_secrets,
    docker_config_file,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    make_namespaces,
    managed,
    once_process,
    record,
    record_daemon,
    record_events,
    secret_value,
    snapshot,
    syncd_daemon,
    write_yaml,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKube]:
    with PrivateKube(tmp_path_factory.mktemp("faults-kube")) as kube:
        yield kube


@pytest.fixture
def logins() -> dict[str, Login]:
    return {
        "ghcr.io": Login("robot", secret_value("apiserver-ghcr")),
        "quay.io": Login("quay+bot", secret_value("apiserver-quay", username="quay+bot")),
    }


def _config(
    tmp_path: Path, logins: dict[str, Login], instance: str, spec: str, selection: dict[str, object], **extra: object
) -> Path:
    docker_config = docker_config_file(tmp_path / "docker-config.json", logins)
    return write_yaml(
        tmp_path / "syncd.yaml",
        {
            "instance": instance,
            "credentials": [{"name": "files", "docker_config": str(docker_config), "registries": sorted(logins)}],
            "secrets": [{"name": spec, "credentials": ["files"], "namespaces": selection, **extra}],
            "schedule": {"interval": "1h"},
        },
    )


def _summary(out: str, spec: str) -> dict[str, int]:
    """`spec: success (12 created, 3 unchanged)` -> {"created": 12, "unchanged": 3}."""
    line = next(line for line in out.splitlines() if line.startswith(f"{spec}: "))
    counts = line.partition("(")[2].rstrip(")")
    return {word: int(n) for n, word in (part.split() for part in counts.split(", ") if part)}


def test_apiserver_killed_and_restarted_mid_rollout_then_the_next_run_completes(
    cluster: PrivateKube, tmp_path: Path, logins: dict[str, Login], instance: str, request: pytest.FixtureRequest
) -> None:
    prefix, spec = f"a{uuid.uuid4().hex[:6]}", "regcred"
    names = make_namespaces(cluster.core, [f"{prefix}-{i:03d}" for i in range(300)])
    add_unmanaged(cluster.core, names[::25])
    unmanaged_before = snapshot(cluster.core, "not-ours", names[::25])
    config = _config(tmp_path, logins, instance, spec, {"patterns": [f"{prefix}-*"]})

    first = once_process(config, cluster.kubeconfig, tmp_path / "first")
    wait_until(lambda: len(managed(cluster.core, spec, prefix)) >= 30, 60, "the rollout under way", interval=0.05)
    cluster.kill_apiserver()
    code = first.wait(timeout=60)
    cluster.kube.restart_apiserver()
    record(request.node.nodeid, first.out, first.err)

    assert code == 1, first.out  # cut off mid-rollout: some writes failed, and it says so
    written = managed(cluster.core, spec, prefix)
    assert 30 <= len(written) < len(names)
    for secret in written.values():  # everything that exists is whole
        check_secret(secret, spec, logins)
    failed = [line for line in first.err.splitlines() if '"write failed"' in line]
    assert failed, first.err
    for line in failed:
        entry = json.loads(line)
        assert entry["namespace"].startswith(prefix)
        assert f"Secret {entry['namespace']}/{spec}: cannot reach the Kubernetes API" in entry["error"]
    assert "partial" in first.out

    second = once_process(config, cluster.kubeconfig, tmp_path / "second")
    assert second.wait(timeout=120) == 0, second.out + second.err[-3000:]
    record(request.node.nodeid, second.out, second.err)
    counts = _summary(second.out, spec)
    assert counts.get("unchanged", 0) >= len(written)
    assert counts.get("created", 0) + counts.get("unchanged", 0) == len(names)
    check_secrets(cluster.core, spec, names, logins)
    assert snapshot(cluster.core, "not-ours", names[::25]) == unmanaged_before
    record_events(request.node.nodeid, cluster.core)


def test_kill_9_of_once_mid_rollout_leaves_nothing_half_written(
    cluster: PrivateKube, tmp_path: Path, logins: dict[str, Login], instance: str, request: pytest.FixtureRequest
) -> None:
    prefix, spec = f"k{uuid.uuid4().hex[:6]}", "pull"
    names = make_namespaces(cluster.core, [f"{prefix}-{i:04d}" for i in range(1000)])
    with_sa = names[::20]
    for namespace in with_sa:
        default_service_account(cluster.core, namespace, ["other"])
    add_unmanaged(cluster.core, names[::50])
    unmanaged_before = snapshot(cluster.core, "not-ours", names[::50])
    config = _config(tmp_path, logins, instance, spec, {"patterns": [f"{prefix}-*"]}, service_accounts=["default"])

    first = once_process(config, cluster.kubeconfig, tmp_path / "first")
    wait_until(lambda: len(managed(cluster.core, spec, prefix)) >= 100, 60, "100 Secrets written", interval=0.05)
    first.process.kill()
    assert first.wait(timeout=10) == -9
    record(request.node.nodeid, first.out, first.err)

    # Right after the kill, before any rerun: each Secret is absent or whole, never partial.
    after_kill = managed(cluster.core, spec, prefix)
    assert 100 <= len(after_kill) < len(names)
    for secret in after_kill.values():
        check_secret(secret, spec, logins)

    second = once_process(config, cluster.kubeconfig, tmp_path / "second")
    assert second.wait(timeout=180) == 0, second.out + second.err[-3000:]
    record(request.node.nodeid, second.out, second.err)
    counts = _summary(second.out, spec)
    assert counts.get("unchanged", 0) >= len(after_kill)
    assert counts.get("created", 0) + counts.get("unchanged", 0) == len(names)
    check_secrets(cluster.core, spec, names, logins)
    for namespace in with_sa:  # appended to what was there, exactly once
        refs = pull_secret_names(cluster.core.read_namespaced_service_account("default", namespace))
        assert refs == ["other", spec]
    assert snapshot(cluster.core, "not-ours", names[::50]) == unmanaged_before
    record_events(request.node.nodeid, cluster.core)


def test_daemon_recovers_from_an_etcd_restart_without_a_restart_of_its_own(
    cluster: PrivateKube, tmp_path: Path, logins: dict[str, Login], instance: str, request: pytest.FixtureRequest
) -> None:
    prefix, spec = f"e{uuid.uuid4().hex[:6]}", "regcred"
    new_namespace(cluster.core, f"{prefix}-before", {"pull": prefix})
    add_unmanaged(cluster.core, [f"{prefix}-before"])
    unmanaged_before = snapshot(cluster.core, "not-ours", [f"{prefix}-before"])
    docker_config = docker_config_file(tmp_path / "docker-config.json", logins)
    document = {
        "instance": instance,
        "credentials": [{"name": "files", "docker_config": str(docker_config), "registries": sorted(logins)}],
        "secrets": [{"name": spec, "credentials": ["files"], "namespaces": {"selector": f"pull={prefix}"}}],
        "schedule": {"interval": "1h"},
    }
    syncd = syncd_daemon(document, tmp_path / "daemon", cluster.kubeconfig)
    try:
        wait_until(lambda: has_secret(cluster.core, f"{prefix}-before", spec), 15, "the first write")

        started = time.monotonic()
        cluster.kube.restart_etcd()
        print(f"etcd restart: {time.monotonic() - started:.2f}s")
        assert syncd.get("/healthz").status_code == 200
        new_namespace(cluster.core, f"{prefix}-after", {"pull": prefix})
        took = wait_until(lambda: has_secret(cluster.core, f"{prefix}-after", spec), 30, "a namespace made after")
        cluster.core.delete_namespaced_secret(spec, f"{prefix}-before")
        wait_until(lambda: has_secret(cluster.core, f"{prefix}-before", spec), 30, "a deleted Secret repaired")
        print(f"namespace created after the etcd restart synced in {took:.2f}s")

        check_secrets(cluster.core, spec, [f"{prefix}-before", f"{prefix}-after"], logins)
        assert snapshot(cluster.core, "not-ours", [f"{prefix}-before"]) == unmanaged_before
        assert syncd.get("/healthz").status_code == 200
        assert syncd.metric("syncd_secret_writes_total", secret=spec, operation="create", result="success") == 3
        # The apiserver absorbed the outage (its etcd client reconnects, watches stay open): nothing failed.
        assert syncd.metric("syncd_sync_runs_total", secret=spec, result="failure") == 0
    finally:
        record_daemon(request.node.nodeid, syncd)
        syncd.stop_quietly()
    record_events(request.node.nodeid, cluster.core)
