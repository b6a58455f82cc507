"""The harness servers for a soak: etcd + kube-apiserver (with an audit log), OpenBao, and
docker-credential-pass behind a wrapper the soak can make hang; plus an identity per replica.

Each replica logs in as a ServiceAccount of its own (`system:serviceaccount:soak-system:syncd-a`),
so the apiserver's audit log says which replica made every write.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

from harness.accounts import cluster_admin_kubeconfig
from harness.audit import audit_flags, audit_log_path
from harness.credhelper import CredentialHelper
from harness.kube import Kube, find_binaries
from harness.vault import Vault

SYSTEM_NAMESPACE = "soak-system"
HELPER_NAME = "soak"  # syncd runs docker-credential-soak, the wrapper below


class Servers:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.kube = Kube(state_dir, extra_args=audit_flags(state_dir))
        self.vault = Vault(state_dir)
        self.helper = CredentialHelper(state_dir)
        self.bin_dir = state_dir / "bin"
        self.hang_file = state_dir / "helper-hangs"

    @property
    def audit_log(self) -> Path:
        return audit_log_path(self.dir)

    def start(self) -> None:
        self.kube.start()
        self.vault.start()
        self.helper.start()
        self._write_helper_wrapper()
        self.api = config.new_client_from_config(config_file=str(self.kube.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=SYSTEM_NAMESPACE)))

    def stop(self) -> None:
        for part in (self.kube, self.vault):
            part.stop()
        self.helper.stop()

    def _write_helper_wrapper(self) -> None:
        """docker-credential-soak: docker-credential-pass, or a hang while the hang file exists."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        script = self.bin_dir / f"docker-credential-{HELPER_NAME}"
        script.write_text(
            f'#!/bin/sh\nif [ -e "{self.hang_file}" ]; then sleep 600; fi\nexec docker-credential-pass "$@"\n'
        )
        script.chmod(0o755)

    def replica_env(self) -> dict[str, str]:
        return {**self.helper.env, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    # --- faults on the servers ----------------------------------------------------------------

    def kill_apiserver(self) -> None:
        self.kube.kill_apiserver()

    def start_apiserver(self) -> None:
        self.kube.start_apiserver(find_binaries().kube_apiserver)

    def stop_etcd(self) -> None:
        self.kube.etcd.stop(timeout=0.5)

    def start_etcd(self) -> None:
        self.kube.start_etcd(find_binaries().etcd)
        self.kube.apiserver.wait_healthy(self.kube.ready, timeout=120)

    # --- replica identities ----------------------------------------------------------------------

    def replica_kubeconfig(self, name: str, server: str | None = None) -> Path:
        """A cluster-admin ServiceAccount `name` and a kubeconfig logging in with its token.

        `server` (the soak's proxy, plain HTTP on loopback) replaces the apiserver's URL.
        """
        path = self.dir / f"kubeconfig-{name}"
        return cluster_admin_kubeconfig(self.kube, self.api, SYSTEM_NAMESPACE, name, path, server=server)


def replica_user(name: str) -> str:
    """The username the apiserver (and its audit log) gives replica `name`."""
    return f"system:serviceaccount:{SYSTEM_NAMESPACE}:{name}"
