"""A credential helper that prints its environment sees no Vault token (issue 27, item 4).

`docker-credential-printenv` answers the helper protocol and writes the environment it was started
with to a file; syncd runs it with VAULT_TOKEN and a made-up SYNCD_SECRET_X in its own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from harness import Stack
from syncd.config import HelperCredential
from syncd.sources.helper import HelperSource
from tests.integration.conftest import WriteConfig, secrets_named

pytestmark = pytest.mark.integration

VAULT_TOKEN = "hvs.must-never-reach-a-helper"
SYNCD_SECRET = "syncd-secret-must-never-reach-a-helper"
PASSWORD = "printenv-password-7d1f"
GREETING = "PRINTENV_GREETING"  # not on the allow-list: the helper gets it because helper_env names it
PARENT_ENV = {"VAULT_TOKEN": VAULT_TOKEN, "SYNCD_SECRET_X": SYNCD_SECRET, GREETING: "hello"}


def write_printenv(bin_dir: Path, env_file: Path) -> None:
    """The helper: reads the server URL, writes its environment to `env_file`, answers a login."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "docker-credential-printenv"
    answer = f'{{"ServerURL":"%s","Username":"robot","Secret":"{PASSWORD}"}}'
    script.write_text(f"#!/bin/sh\nserver=$(cat)\nenv > {env_file}\nprintf '{answer}' \"$server\"\n")
    script.chmod(0o755)


def seen_by_helper(env_file: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def assert_sees_only_what_it_may(seen: dict[str, str]) -> None:
    assert "VAULT_TOKEN" not in seen
    assert "SYNCD_SECRET_X" not in seen
    assert VAULT_TOKEN not in "".join(seen.values())
    assert {"PATH", "HOME"} <= seen.keys()
    assert seen[GREETING] == "hello"


def test_helper_source_passes_no_vault_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "helper.env"
    write_printenv(tmp_path / "bin", env_file)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for name, value in PARENT_ENV.items():
        monkeypatch.setenv(name, value)
    credential = HelperCredential.model_validate(
        {"name": "printenv", "registry": "r.example", "helper": "printenv", "helper_env": [GREETING]}
    )
    assert HelperSource().fetch(credential).entries[0].password == PASSWORD
    assert_sees_only_what_it_may(seen_by_helper(env_file))


def test_syncd_once_passes_no_vault_token(
    stack: Stack,
    core_v1: client.CoreV1Api,
    tmp_path: Path,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
) -> None:
    """The real CLI in its own process, with the Vault token in its environment as a pod would have it."""
    env_file = tmp_path / "helper.env"
    write_printenv(tmp_path / "bin", env_file)
    [namespace] = make_namespaces(f"{prefix}-printenv")
    credential = {"name": "printenv", "registry": "r.example", "helper": "printenv", "helper_env": [GREETING]}
    spec = {"name": f"pull-{uuid.uuid4().hex[:6]}", "credentials": ["printenv"], "namespaces": {"names": [namespace]}}
    config = write_config({"credentials": [credential], "secrets": [spec]})
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        **PARENT_ENV,
    }
    argv = [sys.executable, "-m", "syncd", "once", "--config", str(config), "--kubeconfig", str(stack.kube.kubeconfig)]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_sees_only_what_it_may(seen_by_helper(env_file))
    assert PASSWORD not in run.stdout + run.stderr
    assert list(secrets_named(core_v1, str(spec["name"]), prefix)) == [namespace]
