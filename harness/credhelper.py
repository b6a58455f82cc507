"""`docker-credential-pass` on a throwaway GnuPG home and password store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from harness.process import HarnessError

APT_HINT = "apt-get install golang-docker-credential-helpers pass gnupg (or run `make deps`)"


class CredentialHelper:
    """A no-passphrase GnuPG key and an initialised `pass` store for docker-credential-pass."""

    def __init__(self, state_dir: Path) -> None:
        # Short paths: gpg-agent's socket path must fit in 108 bytes.
        self.gnupg_home = state_dir / "gnupg"
        self.store_dir = state_dir / "pass"

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.gnupg_home), "PASSWORD_STORE_DIR": str(self.store_dir)}

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        result = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **self.env},
        )
        if result.returncode != 0:
            raise HarnessError(
                f"{argv[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def start(self) -> None:
        for tool in ("gpg", "pass", "docker-credential-pass"):
            if not shutil.which(tool):
                raise HarnessError(f"`{tool}` is missing: {APT_HINT}")
        self.gnupg_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._run(
            [
                "gpg",
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "syncd test <syncd-test@example.invalid>",
                "default",
                "default",
                "never",
            ]
        )
        listing = self._run(["gpg", "--list-keys", "--with-colons"])
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        self._run(["pass", "init", fingerprint])

    def store(self, server_url: str, username: str, secret: str) -> None:
        payload = json.dumps({"ServerURL": server_url, "Username": username, "Secret": secret})
        self._run(["docker-credential-pass", "store"], stdin=payload)

    def get(self, server_url: str) -> dict[str, str]:
        return dict(json.loads(self._run(["docker-credential-pass", "get"], stdin=server_url)))

    def stop(self) -> None:
        if self.gnupg_home.exists():
            subprocess.run(
                ["gpgconf", "--kill", "all"],
                env={**os.environ, **self.env},
                check=False,
                capture_output=True,
            )
