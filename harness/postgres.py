"""A throwaway PostgreSQL from the Debian packages' binaries (`make deps`), trust auth on 127.0.0.1
only: the database OpenBao's database engine makes leased logins in (tests/integration/test_vault_leases.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.process import free_port
from harness.wait import wait_until

NOBODY = 65534


@dataclass
class Postgres:
    port: int
    bin_dir: Path

    def roles(self) -> set[str]:
        """The roles OpenBao's database engine made and did not drop yet (its names start `v-`)."""
        query = "SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'"
        out = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc", query],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}


def _as_nobody(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv] if os.getuid() == 0 else argv


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    initdb = shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb"
    bin_dir = Path(os.path.realpath(initdb)).parent
    # Not under pytest's tmp_path: that is root's alone, and the server runs as nobody.
    home = Path(tempfile.mkdtemp(prefix="syncd-pg-"))
    if os.getuid() == 0:
        os.chown(home, NOBODY, NOBODY)
    data, port = home / "data", free_port()
    subprocess.run(
        _as_nobody([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    argv = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(home)]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    with (home / "postgres.log").open("ab") as log:
        server = subprocess.Popen(_as_nobody(argv), stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]
        wait_until(lambda: subprocess.run(ready, capture_output=True, check=False).returncode == 0, 30, "PostgreSQL")
        yield Postgres(port, bin_dir)
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown: OpenBao's pooled connections would hold a smart one
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
