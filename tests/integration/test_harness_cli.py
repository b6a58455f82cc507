"""`python -m harness up/down` from a shell: servers start, and `down` leaves none behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def _processes_using(directory: Path) -> list[str]:
    """Command lines of live processes that mention the state folder (servers, gpg-agent)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if (str(directory) in cmdline or str(directory).encode() in environ) and _alive(int(proc.name)):
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_up_writes_kubeconfig_and_env_and_down_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "d"
    harness = [sys.executable, "-m", "harness"]
    up = subprocess.run(
        [*harness, "up", "--dir", str(state)], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    try:
        assert up.returncode == 0, up.stderr
        pid_files = sorted((state / "pids").iterdir())
        expected = [
            "etcd",
            "hollow-node-hollow-1",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "openbao",
            "registry",
        ]
        assert [p.name for p in pid_files] == expected
        pids = [int(p.read_text()) for p in pid_files]
        env_text = (state / "env").read_text()
        for key in ("VAULT_ADDR", "VAULT_TOKEN", "GNUPGHOME", "PASSWORD_STORE_DIR", "SYNCD_TEST_REGISTRY"):
            assert f"export {key}=" in env_text
        kubectl = subprocess.run(
            ["kubectl", "--kubeconfig", str(state / "kubeconfig"), "get", "ns", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert kubectl.returncode == 0, kubectl.stderr
        assert "namespace/default" in kubectl.stdout.split()
    finally:
        down = subprocess.run(
            [*harness, "down", "--dir", str(state)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
        )
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if _alive(pid)]
    assert _processes_using(state) == []
