"""A small real control plane: etcd, kube-apiserver (RBAC, an admin client certificate,
ServiceAccount tokens and the ServiceAccount admission plugin, as in every real cluster),
kube-controller-manager and kube-scheduler."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import requests

from harness import pki
from harness.builds import built
from harness.controllers import ControllerManager, Scheduler
from harness.process import HarnessError, Server, free_port

BINARIES_SCRIPT = "envtest-binaries.sh"


@dataclass(frozen=True)
class KubeBinaries:
    etcd: Path
    kube_apiserver: Path


def find_binaries() -> KubeBinaries:
    """TEST_ASSET_* or KUBEBUILDER_ASSETS when set, else the version-pinned cache (built if missing)."""
    explicit = os.environ.get("TEST_ASSET_KUBE_APISERVER"), os.environ.get("TEST_ASSET_ETCD")
    if all(explicit):
        binaries = KubeBinaries(etcd=Path(explicit[1] or ""), kube_apiserver=Path(explicit[0] or ""))
    else:
        assets = os.environ.get("KUBEBUILDER_ASSETS") or built(BINARIES_SCRIPT)
        binaries = KubeBinaries(etcd=Path(assets) / "etcd", kube_apiserver=Path(assets) / "kube-apiserver")
    for path in (binaries.etcd, binaries.kube_apiserver):
        if not os.access(path, os.X_OK):
            raise HarnessError(
                f"{path} is missing or not executable. Run `scripts/{BINARIES_SCRIPT}` (or `make envtest`) to build "
                "etcd and kube-apiserver, or point KUBEBUILDER_ASSETS at a folder holding both."
            )
    return binaries


class Kube:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback ports;
    `kubeconfig` grants cluster-admin."""

    def __init__(self, state_dir: Path, extra_args: list[str] | None = None, *, control_plane: bool = True) -> None:
        """`extra_args` are added to kube-apiserver's flags (e.g. `--max-requests-inflight=1`).
        `control_plane=False`: the apiserver alone, without the ServiceAccount admission plugin
        (it makes a Pod wait for a ServiceAccount that no controller would create)."""
        self.dir = state_dir / "kube"
        self.extra_args = list(extra_args or [])
        self.control_plane = control_plane
        self.etcd = Server("etcd", state_dir)
        self.apiserver = Server("kube-apiserver", state_dir)
        self.controller_manager = ControllerManager(self, state_dir)
        self.scheduler = Scheduler(self, state_dir)
        self.kubeconfig = state_dir / "kubeconfig"
        self.etcd_port = 0
        self.etcd_peer_port = 0
        self.port = 0
        self.pki: pki.KubePKI | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        binaries = find_binaries()
        self.pki = pki.create(self.dir / "pki")
        self.start_etcd(binaries.etcd)
        self.port = free_port()
        self.start_apiserver(binaries.kube_apiserver)
        self.write_kubeconfig()
        if self.control_plane:
            self.controller_manager.start()
            self.scheduler.start()

    def start_etcd(self, binary: Path) -> None:
        """Start etcd; on a restart, on the same ports and data dir, so the apiserver reconnects to it."""
        self.etcd_port = self.etcd_port or free_port()
        self.etcd_peer_port = self.etcd_peer_port or free_port()
        client_url, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd.start(
            [
                str(binary),
                "--name=default",
                f"--data-dir={self.dir / 'etcd-data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Throwaway data: durability costs seconds per test and buys nothing here.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        )
        self.etcd.wait_healthy(lambda: requests.get(f"{client_url}/health", timeout=2).ok)

    def apiserver_argv(self, binary: Path) -> list[str]:
        assert self.pki is not None
        return [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--cert-dir={self.dir / 'certs'}",
            f"--tls-cert-file={self.pki.serving_cert}",
            f"--tls-private-key-file={self.pki.serving_key}",
            f"--client-ca-file={self.pki.ca_cert}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.url}/",
            f"--service-account-key-file={self.pki.sa_public_key}",
            f"--service-account-signing-key-file={self.pki.sa_signing_key}",
            *([] if self.control_plane else ["--disable-admission-plugins=ServiceAccount"]),
            "--allow-privileged=true",
            "--v=1",
            *self.extra_args,
        ]

    def start_apiserver(self, binary: Path) -> None:
        self.apiserver.start(self.apiserver_argv(binary))
        self.apiserver.wait_healthy(self.ready, timeout=120)

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver: in-flight requests are cut off; start_apiserver brings it back."""
        self.apiserver.kill()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port, against the same etcd."""
        self.apiserver.stop()
        self.start_apiserver(find_binaries().kube_apiserver)

    def restart_etcd(self) -> None:
        """Stop and start etcd with the same data and ports; return once the apiserver is ready again.

        A short grace, then SIGKILL: on SIGTERM etcd waits about 7 s for the apiserver's watch streams
        to drain, and a crash is the harder case anyway (no data is lost: writes reach the page cache).
        """
        self.etcd.stop(timeout=0.5)
        self.start_etcd(find_binaries().etcd)
        self.apiserver.wait_healthy(self.ready, timeout=120)

    def ready(self) -> bool:
        """The apiserver answers /readyz with 200 (etcd reachable, every post-start hook done)."""
        assert self.pki is not None
        response = requests.get(
            f"{self.url}/readyz",
            timeout=3,
            verify=str(self.pki.ca_cert),
            cert=(str(self.pki.admin_cert), str(self.pki.admin_key)),
        )
        return response.status_code == 200

    def write_kubeconfig(self) -> None:
        assert self.pki is not None

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        self.kubeconfig.write_text(
            KUBECONFIG_TEMPLATE.format(
                server=self.url,
                ca=b64(self.pki.ca_cert),
                cert=b64(self.pki.admin_cert),
                key=b64(self.pki.admin_key),
            )
        )
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        self.scheduler.stop()
        self.controller_manager.stop()
        self.apiserver.stop()
        self.etcd.stop()


KUBECONFIG_TEMPLATE = """\
apiVersion: v1
kind: Config
clusters:
- name: syncd-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: syncd-test
  context: {{cluster: syncd-test, user: admin}}
current-context: syncd-test
"""
