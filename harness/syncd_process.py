"""`syncd run` as a real subprocess: started, probed over HTTP, signalled, killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.process import free_port
from harness.wait import wait_until


class SyncdProcess:
    def __init__(self, config: dict[str, object], directory: Path, kubeconfig: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        config = {**config, "server": {"address": f"127.0.0.1:{self.port}"}}
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / "syncd.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = directory / "syncd.log"
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, log_level: str = "debug") -> SyncdProcess:
        argv = [sys.executable, "-m", "syncd", "run", "--config", str(self.config_path)]
        argv += ["--kubeconfig", str(self.kubeconfig), "--log-level", log_level, "--log-format", "json"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_until(lambda: self.get("/healthz").status_code == 200, 30, "syncd /healthz")
        return self

    def get(self, path: str) -> requests.Response:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"syncd exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: self.get("/readyz").status_code == 200, timeout, "syncd /readyz")

    def metrics(self) -> str:
        return self.get("/metrics").text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample, 0 when absent."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            sample, _, label_text = key.partition("{")
            found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
            if sample == name and found == wanted:
                return float(value)
        return 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 10) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


Start = Callable[..., SyncdProcess]


def vault_config(stack: Stack, tmp_path: Path) -> dict[str, Any]:
    token_file = tmp_path / "token"
    token_file.write_text(stack.vault.token)
    return {
        "address": stack.vault.address,
        "allow_http": True,
        "auth": {"method": "token", "token_file": str(token_file)},
    }


def base_config(stack: Stack, tmp_path: Path, path: str, prefix: str, **spec: Any) -> dict[str, Any]:
    return {
        "vault": vault_config(stack, tmp_path),
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}}],
        "secrets": [
            {
                "name": "regcred",
                "credentials": ["robot"],
                "namespaces": {"selector": f"pull={prefix}"},
                **spec,
            }
        ],
        "schedule": {"interval": "1h"},
    }


def has_secret(core_v1: client.CoreV1Api, namespace: str, name: str = "regcred") -> bool:
    try:
        core_v1.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def new_namespace(core_v1: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
