"""ECR end to end: the real docker-credential-ecr-login (scripts/ecr-login-helper.sh) asking a local ECR
API (moto, harness/ecr.py) for a token, and syncd writing it into every selected namespace.

moto's token is constant per registry id; the emulator here appends a generation that `rotate()` bumps
(harness/ecr_server.py), which is what stands in for ECR handing out a new 12-hour token.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness.ecr import REGISTRY, EcrEmulator, helper_binary
from harness.kube_objects import secret_data
from harness.syncd_process import Start
from harness.wait import wait_until
from tests.integration.conftest import RunSyncd, WriteConfig
from tests.integration.faults import Login, check_secrets, error_lines, managed, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ecr_helper() -> Path:
    return helper_binary()


@pytest.fixture
def ecr(tmp_path: Path, ecr_helper: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EcrEmulator]:
    """The emulator, and its environment in this process: `syncd once` runs in-process and starts the
    helper with it."""
    emulator = EcrEmulator(tmp_path)
    emulator.start()
    for key, value in emulator.env(ecr_helper).items():
        monkeypatch.setenv(key, value)
    try:
        yield emulator
    finally:
        emulator.stop()


def auths(secret: client.V1Secret) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(secret_data(secret)[".dockerconfigjson"]))["auths"])


def _config(prefix: str) -> dict[str, Any]:
    return {
        "credentials": [{"name": "ecr", "registry": REGISTRY, "helper": "ecr-login", "lifetime": "12h"}],
        "secrets": [{"name": "ecr-pull", "credentials": ["ecr"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
    }


def test_ecr_token_reaches_every_namespace_and_a_new_one_replaces_it_on_the_next_sync(
    ecr: EcrEmulator,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    namespaces = make_namespaces(f"{prefix}-a", f"{prefix}-b", f"{prefix}-c")
    config = write_config(_config(prefix))

    first = run_syncd("once", config=config)
    assert first.code == 0, first.out + first.err
    token = ecr.token()
    assert token == "123456789012-auth-token"  # moto's own answer, untouched before any rotation
    check_secrets(core_v1, "ecr-pull", namespaces, {REGISTRY: Login("AWS", token)})

    rotated = ecr.rotate()
    second = run_syncd("once", config=config)
    assert second.code == 0, second.out + second.err
    assert second.out.strip() == "ecr-pull: success (3 updated)"
    check_secrets(core_v1, "ecr-pull", namespaces, {REGISTRY: Login("AWS", rotated)})

    for run in (first, second):
        for value in (token, rotated):
            assert value not in run.out + run.err


def test_the_daemon_brings_a_rotated_ecr_token_to_every_namespace_before_the_lifetime_ends(
    ecr: EcrEmulator,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    start_syncd: Start,
) -> None:
    """`syncd run` with a lifetime far shorter than the interval: the refresh, not the interval, fetches
    the new token (in production: `lifetime: 12h`, refreshed when a third of it is left)."""
    namespaces = make_namespaces(f"{prefix}-a", f"{prefix}-b", f"{prefix}-c")
    config = _config(prefix)
    config["credentials"][0]["lifetime"] = "8s"
    config["schedule"] = {"interval": "1h"}
    syncd = start_syncd(config)

    def everywhere(token: str) -> bool:
        found = managed(core_v1, "ecr-pull", prefix)
        return {ns: auths(s)[REGISTRY]["password"] for ns, s in found.items()} == dict.fromkeys(namespaces, token)

    wait_until(lambda: everywhere(ecr.token()), 15, "the first token in every namespace")
    first = ecr.token()
    rotated = ecr.rotate()
    wait_until(lambda: everywhere(rotated), 8, "the rotated token in every namespace within the 8 s lifetime")
    check_secrets(core_v1, "ecr-pull", namespaces, {REGISTRY: Login("AWS", rotated)})
    for token in (first, rotated):
        assert token not in syncd.log()


def test_ecr_helper_failing_changes_nothing_and_fails_the_sync_naming_the_credential(
    ecr: EcrEmulator,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    namespaces = make_namespaces(f"{prefix}-a", f"{prefix}-b")
    config = write_config(_config(prefix))
    assert run_syncd("once", config=config).code == 0
    token = ecr.token()
    check_secrets(core_v1, "ecr-pull", namespaces, {REGISTRY: Login("AWS", token)})
    before = snapshot(core_v1, "ecr-pull", namespaces)

    ecr.stop()  # the ECR API is gone: the helper cannot get a token
    run = run_syncd("once", config=config)

    # The helper answers every failure with the credential-helper protocol's "credentials not found"
    # and keeps the cause in its own log (HOME/.ecr/log/ecr-login.log).
    expected = f"credential 'ecr': docker-credential-ecr-login has no credentials for {REGISTRY}"
    assert run.code == 1, run.out
    assert f"error: {expected}" in run.out, run.out
    [error] = error_lines(run.err)
    assert error["message"].startswith(f"sync failed: {expected}"), error
    assert "connection refused" in (ecr.dir / "home" / ".ecr" / "log" / "ecr-login.log").read_text()
    assert snapshot(core_v1, "ecr-pull", namespaces) == before
    assert token not in run.out + run.err
