"""Start servers in their own process group, wait for health, stop them without leftovers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.wait import TimedOut, wait_until


class HarnessError(RuntimeError):
    """A server could not be started or found; the message says how to fix it."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One background server: its log file, its pid file, its process group."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.log_path = state_dir / "logs" / f"{name}.log"
        self.pid_path = state_dir / "pids" / name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A session of its own, so that `down` from another process can kill the whole group.
            self.process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_path.write_text(str(self.process.pid))

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_healthy(self, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        """Until `probe()` holds; a server that exits meanwhile fails at once, with its log."""

        def healthy() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise HarnessError(
                    f"{self.name} exited with {self.process.returncode}; log {self.log_path}:\n{self.log_tail()}"
                )
            return probe()

        try:
            wait_until(healthy, timeout, f"{self.name} to be healthy", interval=0.2)
        except TimedOut as exc:
            raise HarnessError(f"{exc}; log {self.log_path}:\n{self.log_tail()}") from exc

    def kill(self) -> None:
        """SIGKILL its process group, no graceful shutdown: a crash, for the fault tests."""
        assert self.process is not None, f"{self.name} was not started by this process"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self, timeout: float = 15.0) -> None:
        stop_pid_file(self.pid_path, timeout)
        if self.process is not None:
            self.process.wait(timeout=timeout)
            self.process = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid_file(pid_path: Path, timeout: float = 15.0) -> None:
    """SIGTERM the process group named in `pid_path`, SIGKILL it if it lingers."""
    if not pid_path.exists():
        return
    pgid = int(pid_path.read_text())
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            _reap(pgid)
            time.sleep(0.1)
        if not _group_alive(pgid):
            break
    pid_path.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect our own exited child so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
