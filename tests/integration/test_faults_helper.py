"""Docker credential helpers misbehaving: hanging, killed by a signal, printing garbage or megabytes,
failing after printing their answer. `syncd once` must exit 1 within helper_timeout plus a margin,
name the credential, leave every existing Secret as it was, and never pass on what the helper printed.

Each helper is a shell script on PATH (`docker-credential-flaky`), first answering properly so that
Secrets exist, then rewritten to misbehave.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from harness.wait import wait_until
from tests.integration.conftest import RunSyncd, WriteConfig
from tests.integration.faults import (
    Login,
    add_unmanaged,
    check_secrets,
    error_lines,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    record,
    secret_value,
    snapshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]
REGISTRY = "registry.example.com"
TIMEOUT_SECONDS = 2
MARGIN_SECONDS = 5  # starting the CLI, listing, and reaping the helper's process group


def _answer(secret: str) -> str:
    return f'printf \'{{"ServerURL":"{REGISTRY}","Username":"AWS","Secret":"{secret}"}}\''


# name -> (script body, given the secret it may print and a pid file; the expected error after "credential 'ecr': ")
MODES: dict[str, tuple[Callable[[str, Path], str], str]] = {
    "hangs, with a child holding its pipes": (
        lambda secret, pids: f'echo "{secret}" >&2\nsleep 300 &\necho $! > {pids}\nwait\n',
        f"docker-credential-flaky did not answer in time for {REGISTRY}",
    ),
    "is killed by a signal after printing its answer": (
        lambda secret, _: f"{_answer(secret)}\nkill -KILL $$\n",
        "docker-credential-flaky was killed by signal 9",
    ),
    "prints garbage": (
        lambda secret, _: f"printf 'oops {secret} \\001\\002 {{not json'\n",
        "docker-credential-flaky did not answer with JSON",
    ),
    "prints megabytes": (
        lambda secret, _: f'yes "{secret}" | head -c 20000000\n',
        "docker-credential-flaky output larger than 1 MiB",
    ),
    "prints its answer, then exits 1": (
        lambda secret, _: f"{_answer(secret)}\nexit 1\n",
        "docker-credential-flaky exited with status 1: (its output is JSON, not an error message: not shown)",
    ),
    "reports an error": (
        lambda _secret, _: "echo 'token expired: run aws sso login'\nexit 1\n",
        "docker-credential-flaky exited with status 1: token expired: run aws sso login",
    ),
    "answers an empty Secret": (
        lambda _secret, _: 'printf \'{"ServerURL":"x","Username":"AWS","Secret":""}\'\n',
        f"registry '{REGISTRY}': password is empty",
    ),
}


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`docker-credential-flaky` on PATH; the test writes its body."""
    script = tmp_path / "bin" / "docker-credential-flaky"
    script.parent.mkdir()
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return script


def _write(script: Path, body: str) -> None:
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


def _alive(pid_file: Path) -> bool:
    """Running, not a zombie (PID 1 of a container may be slow to reap what it inherits)."""
    try:
        stat = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("mode", list(MODES))
def test_a_misbehaving_helper_fails_the_run_in_time_naming_the_credential_and_changes_nothing(
    mode: str,
    helper: Path,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    request: pytest.FixtureRequest,
) -> None:
    good = secret_value("helper-good", username="AWS")
    _write(helper, _answer(good) + "\n")
    namespaces = make_namespaces(f"{prefix}-a", f"{prefix}-b")
    add_unmanaged(core_v1, namespaces)
    config = write_config(
        {
            "credentials": [
                {"name": "ecr", "registry": REGISTRY, "helper": "flaky", "helper_timeout": f"{TIMEOUT_SECONDS}s"}
            ],
            "secrets": [{"name": "ecr", "credentials": ["ecr"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
        }
    )
    assert run_syncd("once", config=config).code == 0
    check_secrets(core_v1, "ecr", namespaces, {REGISTRY: Login("AWS", good)})
    before = snapshot(core_v1, "ecr", namespaces) | {
        f"{ns} (not ours)": state for ns, state in snapshot(core_v1, "not-ours", namespaces).items()
    }

    body, expected = MODES[mode]
    printed = secret_value("helper-printed", username="AWS")
    pid_file = tmp_path / "child.pid"
    _write(helper, body(printed, pid_file))
    started = time.monotonic()
    run = run_syncd("once", config=config)
    took = time.monotonic() - started
    record(request.node.nodeid, run.out, run.err)

    assert run.code == 1, run.out
    assert took < TIMEOUT_SECONDS + MARGIN_SECONDS, f"{took:.1f}s"
    assert any(line.startswith(f"  error: credential 'ecr': {expected}") for line in run.out.splitlines()), run.out
    [error] = error_lines(run.err)
    assert error["message"].startswith(f"sync failed: credential 'ecr': {expected}")
    after = snapshot(core_v1, "ecr", namespaces) | {
        f"{ns} (not ours)": state for ns, state in snapshot(core_v1, "not-ours", namespaces).items()
    }
    assert after == before
    assert printed not in run.out + run.err
    if pid_file.exists():  # the helper's whole process group is killed, not only the helper
        wait_until(lambda: not _alive(pid_file), 5, "the helper's child to be killed")

    # The helper fixed: the next run succeeds, and has nothing to change.
    _write(helper, _answer(good) + "\n")
    assert run_syncd("once", config=config).out.strip() == "ecr: success (2 unchanged)"
