"""bench.run stops its servers on SIGINT and SIGTERM, also when a shell started it in the background."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.population import run_parallel
from harness.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
# What bench.run's main does around the stack, with a sleep for the run.
RUN = """
import os, sys, time
from bench.run import Interrupted, stop_on_signals
stop_on_signals()
try:
    print(os.getpid(), flush=True)
    time.sleep(60)
except Interrupted as exc:
    print("interrupted by", exc, flush=True)
finally:
    print("servers stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_a_background_run_through_its_cleanup(sig: signal.Signals, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # A non-interactive shell starts a background job with SIGINT ignored: Python then installs no
    # KeyboardInterrupt handler of its own.
    shell = subprocess.Popen(
        ["bash", "-c", f'"{sys.executable}" -c "$RUN" > "{out}" 2>&1 & wait'],
        cwd=REPO,
        env={"RUN": RUN, "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_until(lambda: out.exists() and out.read_text().strip(), 30, "the run's pid")
        pid = int(out.read_text().split()[0])
        subprocess.run(["kill", f"-{sig.name.removeprefix('SIG')}", str(pid)], check=True)
        assert shell.wait(timeout=30) == 0
    finally:
        shell.kill()
    assert out.read_text().split("\n")[1:3] == [f"interrupted by {sig.name}", "servers stopped"]


def test_run_parallel_drops_what_has_not_started_when_one_fails() -> None:
    started: list[str] = []
    lock = threading.Lock()

    def step(item: str) -> None:
        with lock:
            started.append(item)
        if item == "0":
            raise RuntimeError("boom")
        time.sleep(0.05)

    with pytest.raises(RuntimeError, match="boom"):
        run_parallel(step, [str(i) for i in range(200)], 2)
    assert len(started) < 20
