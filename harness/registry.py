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


class Registry:
    """`/v2/` answers 200 to USERNAME/PASSWORD and 401 to anything else."""

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
        htpasswd = self.dir / "htpasswd"
        # distribution's htpasswd auth accepts bcrypt entries only.
        entry = subprocess.run(
            ["htpasswd", "-Bbn", self.username, self.password],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        htpasswd.write_text(entry)
        self.port = free_port()
        config = self.dir / "config.yml"
        config.write_text(CONFIG.format(data=self.dir / "data", port=self.port, htpasswd=htpasswd))
        self.server.start(["docker-registry", "serve", str(config)])
        self.server.wait_healthy(lambda: requests.get(f"http://{self.host}/v2/", timeout=2).status_code == 401)

    def stop(self) -> None:
        self.server.stop()
