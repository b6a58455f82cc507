"""A kubelet node for the harness cluster: v1.34.4's hollow kubelet with real image pulls.

scripts/hollow-node/main.go runs the kubelet of pkg/kubemark over fake containers, with a CRI
image service that logs in to the registry with the AuthConfig the kubelet hands it. So a Pod goes
Running only when its pull Secret really logs in; otherwise the kubelet's own ErrImagePull /
ImagePullBackOff and Events follow. Built and cached by scripts/hollow-node.sh ($HOLLOW_NODE
overrides it).

The kubelet registers its Node with the `node.kubernetes.io/not-ready:NoSchedule` taint; only
kube-controller-manager's node-lifecycle-controller lifts it, so Pods get scheduled here only with
a ControllerManager running that controller (`wait_schedulable`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from harness.builds import built
from harness.kube import Kube
from harness.process import HarnessError, Server
from harness.wait import TimedOut, wait_until

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
TMPDIR_NOTE = "tmpdir"


def remove_leftovers(state_dir: Path) -> None:
    """The /tmp folders of nodes started under `state_dir` (by this process or another)."""
    for note in state_dir.glob(f"*/{TMPDIR_NOTE}"):
        shutil.rmtree(note.read_text().strip(), ignore_errors=True)
        note.unlink()


def find_binary() -> Path:
    """hollow-node from the cache (built if missing, a few minutes cold), or $HOLLOW_NODE."""
    return built("hollow-node.sh")


class HollowNode:
    """One Node called `name`; `insecure_registries` (HOST:PORT) are pulled from over plain HTTP."""

    def __init__(
        self, kube: Kube, state_dir: Path, name: str = "hollow-1", insecure_registries: Sequence[str] = ()
    ) -> None:
        self.kube = kube
        self.name = name
        self.insecure_registries = list(insecure_registries)
        self.dir = state_dir / name
        self.server = Server(f"hollow-node-{name}", state_dir)
        self.tmp: Path | None = None

    def argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--kubeconfig={self.kube.kubeconfig}",
            f"--name={self.name}",
            *(f"--insecure-registry={host}" for host in self.insecure_registries),
            "--v=2",
        ]

    def start(self, timeout: float = 90) -> None:
        """Start the kubelet; return once its Node is Ready (it may still carry the not-ready taint)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        # TMPDIR: the kubelet's root dir and the fake runtime's and pod-resources sockets. Short, under
        # /tmp, not in the state folder: a unix socket path is at most 107 bytes, and pytest's folders
        # under xdist went past it ("bind: invalid argument"). The node removes it on SIGTERM.
        # HOME: the kubelet also reads ~/.docker/config.json as node-wide pull credentials; this
        # node must have none.
        tmp = self.tmp = Path(tempfile.mkdtemp(prefix="syncd-node-"))
        (self.dir / TMPDIR_NOTE).write_text(str(tmp))  # for `down` from another process
        self.server.start(self.argv(find_binary()), env={"TMPDIR": str(tmp), "HOME": str(self.dir)}, cwd=self.dir)
        self.server.wait_healthy(self.ready, timeout=timeout)

    def _node_request(self, method: str) -> requests.Response:
        assert self.kube.pki is not None
        return requests.request(
            method,
            f"{self.kube.url}/api/v1/nodes/{self.name}",
            timeout=5,
            verify=str(self.kube.pki.ca_cert),
            cert=(str(self.kube.pki.admin_cert), str(self.kube.pki.admin_key)),
        )

    def node(self) -> dict[str, Any] | None:
        response = self._node_request("GET")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        node: dict[str, Any] = response.json()
        return node

    def ready(self) -> bool:
        node = self.node() or {}
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def schedulable(self) -> bool:
        taints = (self.node() or {}).get("spec", {}).get("taints", [])
        return self.ready() and not any(t["key"] == NOT_READY_TAINT for t in taints)

    def wait_schedulable(self, timeout: float = 60) -> None:
        """Wait until node-lifecycle-controller lifted the not-ready taint."""
        try:
            wait_until(self.schedulable, timeout, f"node {self.name} without the {NOT_READY_TAINT} taint", interval=0.5)
        except TimedOut as exc:
            raise HarnessError(f"{exc}: is kube-controller-manager running with node-lifecycle-controller?") from exc

    def rss_kib(self) -> int:
        """Resident memory of the node process (VmRSS), for cost reports."""
        assert self.server.process is not None
        for line in Path(f"/proc/{self.server.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise HarnessError(f"no VmRSS for {self.server.name}")

    def stop(self) -> None:
        """Stop the kubelet and delete its Node (a real kubelet leaves it, NotReady; a test cluster
        is better off as it was before, with nowhere to schedule Pods)."""
        self.server.stop()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(requests.RequestException):  # the apiserver may be gone already
            self._node_request("DELETE")
