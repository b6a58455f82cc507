"""The Go programs the harness runs, each built once and cached by a script in scripts/.

Every build script prints the path of what it built (or found in its cache) on its last stdout
line and its progress on stderr; `built` runs one and returns that path, once per process.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from harness.process import HarnessError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = REPO_ROOT / "scripts"
# A cold build fetches k8s.io/kubernetes from the Go module proxy: minutes, once per version.
BUILD_TIMEOUT = 1800


@functools.cache
def built(script: str) -> Path:
    """Run scripts/`script` and return the path it printed (a binary, or a folder of binaries)."""
    path = SCRIPTS / script
    try:
        done = subprocess.run(["bash", str(path)], capture_output=True, text=True, check=True, timeout=BUILD_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        raise HarnessError(f"{path} failed ({exc.returncode}):\n{exc.stderr[-3000:]}") from exc
    return Path(done.stdout.strip().splitlines()[-1])
