"""The whole local environment: Kubernetes, OpenBao, a credential helper and a registry."""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.credhelper import CredentialHelper
from harness.kube import Kube
from harness.node import HollowNode, remove_leftovers
from harness.process import stop_pid_file
from harness.registry import Registry
from harness.vault import Vault


class Stack:
    """Every server syncd talks to, started on loopback ports under one state folder."""

    def __init__(self, state_dir: Path, *, node: bool = False) -> None:
        """`node`: a kubelet (harness/node.py) that pulls from the registry. Off for the test
        session: Pods some tests create only for their Events or admission must stay unscheduled
        (a real kubelet would add its own pull Events to the ones test_pull_failures.py counts), so
        a module that needs a node adds its own. That costs about 1 s per module to start (Ready
        0.5-0.9 s here) and 0.2-3 s to stop: a session node would save some 5 s of a 2-worker
        run, not worth every other Pod's test having to keep its Pods off it."""
        self.dir = state_dir.resolve()
        self.kube = Kube(self.dir)
        self.vault = Vault(self.dir)
        self.helper = CredentialHelper(self.dir)
        self.registry = Registry(self.dir)
        self.with_node = node
        self.node: HollowNode | None = None  # made once the registry has its port

    @property
    def env_path(self) -> Path:
        return self.dir / "env"

    def up(self) -> None:
        """Start everything and return once each server answers its health check."""
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            # The apiserver takes the longest; the others start while it comes up.
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = [pool.submit(part.start) for part in (self.kube, self.vault, self.helper, self.registry)]
                for future in futures:
                    future.result()
            if self.with_node:
                self.node = HollowNode(self.kube, self.dir, insecure_registries=[self.registry.host])
                self.node.start()
                self.node.wait_schedulable()
        except BaseException:
            self.down()
            raise
        self.env_path.write_text(self.env_file())

    def environment(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kube.kubeconfig),
            "VAULT_ADDR": self.vault.address,
            "VAULT_TOKEN": self.vault.token,
            "SYNCD_TEST_VAULT_AUDIT_LOG": str(self.vault.audit_log),
            **self.helper.env,
            "SYNCD_TEST_REGISTRY": self.registry.host,
            "SYNCD_TEST_REGISTRY_USER": self.registry.username,
            "SYNCD_TEST_REGISTRY_PASSWORD": self.registry.password,
        }

    def env_file(self) -> str:
        lines = ["# Written by `python -m harness up`; source it: `. D/env`"]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in self.environment().items()]
        return "\n".join(lines) + "\n"

    def down(self) -> None:
        """Stop every server this folder started, even from another process than `up`."""
        # Servers started by this process stop through their Popen objects, which reaps them: a Popen
        # collected unreaped warns "subprocess N is still running" (ResourceWarning). From another
        # process there are none, and each part stops what its pid file names.
        if self.node is not None:
            self.node.stop()
        for part in (self.kube, self.vault, self.registry):
            part.stop()
        for pid_file in sorted((self.dir / "pids").glob("*")) if (self.dir / "pids").exists() else []:
            stop_pid_file(pid_file)
        self.helper.stop()
        remove_leftovers(self.dir)
