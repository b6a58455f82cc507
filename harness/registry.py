"""A real registry (Debian docker-registry, distribution 2.8) behind htpasswd auth."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import requests

from harness.process import HarnessError, Server, free_port

USERNAME = "syncd-test"
PASSWORD = "registry-pass-7f3a9c"

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: syncd-test
    path: {htpasswd}
"""


def htpasswd_entry(username: str, password: str) -> str:
    """One bcrypt line: distribution's htpasswd auth accepts bcrypt entries only."""
    done = subprocess.run(["htpasswd", "-Bbn", username, password], capture_output=True, text=True, check=True)
    return done.stdout.strip()


class Registry:
    """`/v2/` answers 200 to USERNAME/PASSWORD (and to users added with `set_password`), 401 to anything else."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "registry"
        self.server = Server("registry", state_dir)
        self.port = 0
        self.username, self.password = USERNAME, PASSWORD

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        for tool in ("docker-registry", "htpasswd"):
            if not shutil.which(tool):
                raise HarnessError(
                    f"`{tool}` is missing: apt-get install docker-registry apache2-utils (or `make deps`)"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        htpasswd = self.htpasswd
        htpasswd.write_text(htpasswd_entry(self.username, self.password) + "\n")
        self.port = free_port()
        config = self.dir / "config.yml"
        config.write_text(CONFIG.format(data=self.dir / "data", port=self.port, htpasswd=htpasswd))
        self.server.start(["docker-registry", "serve", str(config)])
        self.server.wait_healthy(lambda: requests.get(f"http://{self.host}/v2/", timeout=2).status_code == 401)

    @property
    def htpasswd(self) -> Path:
        return self.dir / "htpasswd"

    def set_password(self, username: str, password: str) -> None:
        """Add `username`, or change its password: the registry re-reads the file when its
        modification time changes (distribution 2.8 htpasswd access controller), no restart.
        Tests use users of their own: USERNAME's password is everybody's."""
        if username == self.username:
            raise HarnessError(f"{username} is the registry's shared user: add a user of the test's own")
        kept = [line for line in self.htpasswd.read_text().splitlines() if not line.startswith(f"{username}:")]
        new = self.htpasswd.with_name("htpasswd.new")
        new.write_text("\n".join([*kept, htpasswd_entry(username, password)]) + "\n")
        new.replace(self.htpasswd)  # whole, never half written, when the registry reads it

    def stop(self) -> None:
        self.server.stop()
