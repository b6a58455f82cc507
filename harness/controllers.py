"""kube-controller-manager and kube-scheduler against the harness apiserver.

Built from the Go module proxy and cached by version (scripts/control-plane-binaries.sh). It runs
as in real clusters, each controller with its own ServiceAccount credentials, so that what a
controller does for a request (the token controller filling in a service-account-token Secret)
happens here too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.builds import built
from harness.process import HarnessError, Server

if TYPE_CHECKING:
    from harness.kube import Kube

BINARIES_SCRIPT = "control-plane-binaries.sh"
# Every controller a small real cluster runs, minus those for cloud providers and node networking
# (there is no cloud, and the hollow node needs no Pod CIDR). node-lifecycle-controller stays: it
# lifts a new node's not-ready taint.
DEFAULT_CONTROLLERS = [
    "*",
    "-node-ipam-controller",
    "-cloud-node-lifecycle-controller",
    "-node-route-controller",
    "-service-lb-controller",
]
STARTED_LINE = "Started controller"
SCHEDULER_STARTED = "Starting Kubernetes Scheduler"


def find_binary(name: str) -> Path:
    """`name` (kube-controller-manager, kube-scheduler) from the version-pinned cache, built if missing."""
    binary = built(BINARIES_SCRIPT) / name
    if not os.access(binary, os.X_OK):
        raise HarnessError(f"{binary} is missing: run scripts/{BINARIES_SCRIPT} (or `make control-plane`)")
    return binary


class ControllerManager:
    """kube-controller-manager running `controllers` (kube-controller-manager's own names)."""

    def __init__(self, kube: Kube, state_dir: Path, controllers: list[str] | None = None) -> None:
        self.kube = kube
        self.controllers = list(controllers or DEFAULT_CONTROLLERS)
        self.server = Server("kube-controller-manager", state_dir)

    def argv(self, binary: Path) -> list[str]:
        assert self.kube.pki is not None
        return [
            str(binary),
            f"--kubeconfig={self.kube.kubeconfig}",
            f"--authentication-kubeconfig={self.kube.kubeconfig}",
            f"--authorization-kubeconfig={self.kube.kubeconfig}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.kube.pki.sa_signing_key}",
            f"--root-ca-file={self.kube.pki.ca_cert}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            f"--controllers={','.join(self.controllers)}",
            # Its default client rate (20 QPS) makes the `default` ServiceAccount and the
            # kube-root-ca.crt ConfigMap of 1,000 new namespaces take 100 s; tests create that many.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=1",
        ]

    def start(self) -> None:
        self.server.start(self.argv(find_binary("kube-controller-manager")))
        # No serving port (--secure-port=0): healthy once it logged that its controllers started.
        self.server.wait_healthy(self._started, timeout=60)

    def _started(self) -> bool:
        return STARTED_LINE in self.server.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.server.stop()


class Scheduler:
    """kube-scheduler: binds Pods to the harness's node."""

    def __init__(self, kube: Kube, state_dir: Path) -> None:
        self.kube = kube
        self.server = Server("kube-scheduler", state_dir)

    def start(self) -> None:
        argv = [
            str(find_binary("kube-scheduler")),
            f"--kubeconfig={self.kube.kubeconfig}",
            f"--authentication-kubeconfig={self.kube.kubeconfig}",
            f"--authorization-kubeconfig={self.kube.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ]
        self.server.start(argv)
        self.server.wait_healthy(lambda: SCHEDULER_STARTED in self.server.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        self.server.stop()
