"""Two replicas with leader election, and an apiserver restart under a running daemon."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from harness import Stack
from harness.syncd_process import Start, SyncdProcess, base_config, has_secret, new_namespace
from harness.wait import wait_until

pytestmark = pytest.mark.integration
LEASE_SECONDS = 3


def writes(process: SyncdProcess) -> float:
    """Creates and updates. (Deletes are left out: the shared test cluster holds other tests'
    `regcred` Secrets, which this spec, with `prune: true`, rightly removes.)"""
    return sum(
        process.metric("syncd_secret_writes_total", secret="regcred", operation=op, result="success")
        for op in ("create", "update")
    )


def test_only_the_leader_writes_and_the_standby_takes_over_after_kill_9(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_path: str,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=f"{prefix}-syncd")))
    new_namespace(core_v1, f"{prefix}-a", {"pull": prefix})
    config = base_config(stack, tmp_path, vault_path, prefix)
    config["leader_election"] = {"enabled": True, "namespace": f"{prefix}-syncd", "lease_duration": f"{LEASE_SECONDS}s"}
    one, two = start_syncd(config, name="one"), start_syncd(config, name="two")
    wait_until(lambda: one.metric("syncd_leader") + two.metric("syncd_leader") == 1, 20, "exactly one leader")
    leader, standby = (one, two) if one.metric("syncd_leader") == 1 else (two, one)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-a"), 10, "the leader's first write")
    new_namespace(core_v1, f"{prefix}-b", {"pull": prefix})
    wait_until(lambda: has_secret(core_v1, f"{prefix}-b"), 5, "the leader's watch-triggered write")
    assert writes(leader) == 2
    assert writes(standby) == 0
    assert standby.get("/readyz").status_code == 200

    leader.kill()
    killed = time.monotonic()
    new_namespace(core_v1, f"{prefix}-c", {"pull": prefix})
    wait_until(lambda: has_secret(core_v1, f"{prefix}-c"), 2 * LEASE_SECONDS + 2, "the standby to take over and write")
    took = time.monotonic() - killed
    assert standby.metric("syncd_leader") == 1
    assert writes(standby) >= 1
    print(f"takeover after kill -9: {took:.2f}s (lease {LEASE_SECONDS}s)")
    assert took <= 2 * LEASE_SECONDS + 1


def test_daemon_survives_an_apiserver_restart(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_path: str,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    new_namespace(core_v1, f"{prefix}-before", {"pull": prefix})
    syncd = start_syncd(base_config(stack, tmp_path, vault_path, prefix))
    wait_until(lambda: has_secret(core_v1, f"{prefix}-before"), 10, "the first write")
    stack.kube.restart_apiserver()
    assert syncd.get("/healthz").status_code == 200
    new_namespace(core_v1, f"{prefix}-after", {"pull": prefix})
    took = wait_until(
        lambda: has_secret(core_v1, f"{prefix}-after"), 30, "a Secret in a namespace made after the restart"
    )
    print(f"namespace after apiserver restart synced in {took:.2f}s")
    assert syncd.get("/healthz").status_code == 200
