"""An opt-in audit log for the test apiserver: `Kube(dir, extra_args=audit_flags(dir))`.

The policy records who wrote what and when, never what was written: Secrets, ServiceAccounts
and Events at `Metadata` level (a Secret's data must never reach a log), Leases at `Request`
level, because the holder a replica claims is in the request body and holds no secret.
Reads are not recorded: the log stays small enough to read whole after a long run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]

POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Request",
            "verbs": WRITE_VERBS,
            "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
        },
        {
            "level": "Metadata",
            "verbs": WRITE_VERBS,
            "resources": [{"group": "", "resources": ["secrets", "serviceaccounts", "events"]}],
        },
        {"level": "Metadata", "verbs": WRITE_VERBS, "resources": [{"group": "events.k8s.io", "resources": ["events"]}]},
        {"level": "None"},
    ],
}


def audit_log_path(state_dir: Path) -> Path:
    return state_dir / "kube" / "audit.log"


def audit_flags(state_dir: Path) -> list[str]:
    """kube-apiserver flags that write POLICY's events as JSON lines to `audit_log_path(state_dir)`."""
    policy = state_dir / "kube" / "audit-policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(yaml.safe_dump(POLICY))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_log_path(state_dir)}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",  # one file, never rotated: the whole run is read back at the end
    ]
