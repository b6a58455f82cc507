"""`syncd run` replicas: their configs, processes and signals, and what /proc and /metrics say.

A replica keeps its HTTP port across restarts, as a pod keeps its address for Prometheus.
Logs go to a file at level info (secret values never appear in syncd's logs at any level).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
import yaml

from harness.process import free_port
from harness.wait import wait_until
from soak.servers import HELPER_NAME, SYSTEM_NAMESPACE
from soak.settings import CREDENTIALS, Settings, specs


def syncd_config(
    settings: Settings, vault_address: str, token_file: Path, port: int, kv_variant: int
) -> dict[str, Any]:
    credentials: list[dict[str, Any]] = []
    for plan in CREDENTIALS:
        entry: dict[str, Any] = {"name": plan.name, "registry": plan.registry}
        if plan.source == "vault":
            entry["vault"] = {"kv": 2, "path": plan.vault_path}
        else:
            entry |= {"helper": HELPER_NAME, "helper_timeout": "3s"}
        if plan.lifetime:
            entry["lifetime"] = plan.lifetime
        credentials.append(entry)
    secrets = [
        {
            "name": spec.name,
            "credentials": [spec.credential],
            "namespaces": {"selector": spec.selector()},
            "service_accounts": list(spec.service_accounts),
            "prune": True,
        }
        for spec in specs(kv_variant)
    ]
    return {
        "instance": "soak",
        "vault": {
            "address": vault_address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": credentials,
        "secrets": secrets,
        "schedule": {"interval": settings.interval, "jitter": "2s", "retry": {"min": "1s", "max": "5s"}},
        "leader_election": {
            "enabled": True,
            "namespace": SYSTEM_NAMESPACE,
            "name": "syncd",
            "lease_duration": f"{settings.lease_seconds}s",
        },
        "server": {"address": f"127.0.0.1:{port}"},
    }


class Replica:
    def __init__(self, name: str, directory: Path, kubeconfig: Path, env: dict[str, str]) -> None:
        self.name = name
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, **env}
        self.port = free_port()
        self.config_path = self.dir / "syncd.yaml"
        self.log_path = self.dir / "syncd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def write_config(self, document: dict[str, Any]) -> None:
        """Atomically, as a ConfigMap update swaps a symlink: syncd never reads half a file."""
        staging = self.config_path.with_suffix(".tmp")
        staging.write_text(yaml.safe_dump(document))
        staging.replace(self.config_path)

    def start(self) -> None:
        argv = [sys.executable, "-m", "syncd", "run", "--config", str(self.config_path)]
        argv += ["--kubeconfig", str(self.kubeconfig), "--log-level", "info", "--log-format", "json"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        self.starts += 1
        wait_until(self.healthy, 30, f"replica {self.name} /healthz (log {self.log_path})", interval=0.2)

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as the kubelet does past the grace period or the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def terminate(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def metrics_text(self, timeout: float = 1.5) -> str | None:
        try:
            response = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout)
        except requests.RequestException:
            return None
        return response.text if response.ok else None


def parse_metrics(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample of the exposition text."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            samples[key] = float(value)
        except ValueError:
            continue
    return samples


def process_usage(pid: int) -> dict[str, float] | None:
    """RSS (bytes), threads and open fds of a process, from /proc; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = float(fields.get("VmRSS", "0 kB").split()[0])
    return {"rss_bytes": rss_kb * 1024, "threads": float(fields.get("Threads", "0").strip()), "fds": float(fds)}
