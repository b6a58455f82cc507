"""The Events a kubelet writes when a Pod's image pull fails, written by the kubelet's own code.

For what the hollow node (harness/node.py) cannot produce: another runtime's error text, many
repeats at once. `write_events` runs `kubelet-events`
(scripts/kubelet-events/main.go): the kubelet's image manager (k8s.io/kubernetes v1.34.4) pulls
over a container runtime that fails with the error given, and its event recorder writes the
`Failed` Events (and `FailedToRetrieveImagePullSecret` ones, with the kubelet's format) into the
apiserver, patching repeats onto one Event as on a node.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.builds import built
from harness.process import HarnessError


@dataclass(frozen=True)
class FailedPull:
    """The runtime fails `times` pulls of the container's image with `runtime_error`."""

    container: str
    runtime_error: str
    times: int = 1


@dataclass(frozen=True)
class MissingSecrets:
    """The kubelet could not read these of the Pod's imagePullSecrets, `times` times."""

    names: Sequence[str] = field(default_factory=list)
    times: int = 1


def binary() -> Path:
    """The kubelet-events binary, built on first use (minutes, once per Kubernetes version)."""
    return built("kubelet-events.sh")


def write_events(
    kubeconfig: Path, namespace: str, pod: str, steps: Sequence[FailedPull | MissingSecrets], node: str = "node-1"
) -> int:
    """Write the steps' Events about the Pod, in order; returns the Event writes (creates and patches)."""
    request = {
        "kubeconfig": str(kubeconfig),
        "namespace": namespace,
        "pod": pod,
        "node": node,
        "steps": [_step(step) for step in steps],
    }
    done = subprocess.run(
        [str(binary())], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise HarnessError(f"kubelet-events exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return int(done.stdout.strip())


def _step(step: FailedPull | MissingSecrets) -> dict[str, object]:
    if isinstance(step, FailedPull):
        return {"container": step.container, "runtime_error": step.runtime_error, "times": step.times}
    return {"missing_secrets": list(step.names), "times": step.times}
