"""The apiserver's write floor from Go: scripts/write-floor/main.go, client-go over one HTTP/2
connection with the admin certificate and no client rate limit (how a Go operator writes).

The Python floor (bench/rawkube.py, `http.client`, one HTTP/1.1 connection per thread) says how
fast a minimal Python client writes; on 2 cores its own CPU competes with kube-apiserver and
etcd. The Go client spends a fraction of that CPU, so this floor is closer to what the apiserver
itself accepts. Both are measured in the same run; bench/README.md gives every ratio against each.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.rawkube import Credentials
from harness.builds import built

BUILD_SCRIPT = "write-floor.sh"


@dataclass(frozen=True)
class GoFloor:
    credentials: Credentials
    binary: Path

    @classmethod
    def build(cls, credentials: Credentials) -> GoFloor:
        """Built once from the Go module proxy and cached (scripts/write-floor.sh)."""
        return cls(credentials, built(BUILD_SCRIPT))

    def write(self, namespaces: list[str], concurrency: int, **bodies: Any) -> float:
        """Per namespace the writes `bodies` names (secret_create, secret_patch, account_patch; see
        main.go) on `concurrency` goroutines; seconds from the first request to the last answer,
        as the program measures them (its start and its input excluded). Raises on any failed write."""
        request = {
            "server": self.credentials.url,
            "ca": str(self.credentials.ca_cert),
            "cert": str(self.credentials.client_cert),
            "key": str(self.credentials.client_key),
            "namespaces": namespaces,
            "concurrency": concurrency,
            **bodies,
        }
        done = subprocess.run(
            [str(self.binary)], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=3600
        )
        if done.returncode != 0:
            raise RuntimeError(f"write-floor exited {done.returncode}: {done.stderr[-2000:]}")
        found = json.loads(done.stdout)
        if found["errors"]:
            failed = f"{found['errors']} of {found['requests']} writes failed"
            raise RuntimeError(f"write-floor: {failed}: {found['first_error']}")
        return float(found["seconds"])
