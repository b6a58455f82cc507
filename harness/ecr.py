"""A local ECR API (PyPI `moto[server]`) and the environment `docker-credential-ecr-login` needs to
ask it for tokens: the helper's AWS SDK honours AWS_ENDPOINT_URL, takes any static keys, and keeps
no token cache with AWS_ECR_DISABLE_CACHE=true (its cache lives under HOME/.ecr otherwise).

The helper itself is built by scripts/ecr-login-helper.sh (or named by $ECR_LOGIN_HELPER).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from harness.builds import built
from harness.process import Server, free_port

ACCOUNT = "123456789012"
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def helper_binary() -> Path:
    """docker-credential-ecr-login: $ECR_LOGIN_HELPER, else built once and cached by the script."""
    return built("ecr-login-helper.sh")


class EcrEmulator:
    """moto's server on a free loopback port (harness/ecr_server.py: moto plus a token generation)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "ecr"
        self.server = Server("moto-ecr", state_dir)
        self.port = 0
        self.generation_file = self.dir / "token-generation"
        self.generation = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, helper: Path) -> dict[str, str]:
        """What the helper (started by syncd) needs in its environment: PATH finds it, the SDK finds
        the emulator, dummy keys sign the requests, and HOME is this emulator's own."""
        return {
            "PATH": f"{helper.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.dir / "home"),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "syncd-test-not-a-real-secret",
            "AWS_REGION": REGION,
            "AWS_ECR_DISABLE_CACHE": "true",
        }

    def token(self) -> str:
        """The password the emulator hands out now for REGISTRY (moto's, with the generation)."""
        base = f"{ACCOUNT}-auth-token"
        return f"{base}-{self.generation}" if self.generation else base

    def rotate(self) -> str:
        """A new token from now on; returns it."""
        self.generation += 1
        self.generation_file.write_text(str(self.generation))
        return self.token()

    def start(self) -> None:
        (self.dir / "home").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [sys.executable, str(Path(__file__).with_name("ecr_server.py"))]
        argv += ["--generation-file", str(self.generation_file), "-H", "127.0.0.1", "-p", str(self.port)]
        self.server.start(argv)
        # Any request moto answers will do; its own API lists the services it mocks.
        self.server.wait_healthy(
            lambda: requests.get(f"{self.endpoint}/moto-api/data.json", timeout=2).status_code == 200, timeout=60
        )

    def stop(self) -> None:
        self.server.stop()
