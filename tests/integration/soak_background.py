"""The 3-minute soak of test_soak.py, started in the background as soon as it is collected.

It runs beside the rest of the suite (its own servers, its own ports) and its test is moved to
the end of the run, where it only waits for the result: the suite takes about as long as before,
not three and a half minutes more.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SEED = 7
ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--duration", "180s", "--seed", str(SEED), "--namespaces", "60", "--fault-seconds", "12", "16"]
ARGS += ["--fault-gap", "4", "8"]
KEY = pytest.StashKey["BackgroundSoak"]()


@dataclass
class BackgroundSoak:
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def results(self) -> Path:
        return self.directory / "results"

    def output(self) -> str:
        return (self.directory / "out").read_text(errors="replace")


def start(config: pytest.Config) -> BackgroundSoak:
    directory = Path(tempfile.mkdtemp(prefix="syncd-soak-test-"))
    argv = [sys.executable, "-m", "soak", *ARGS, "--out", str(directory / "results")]
    argv += ["--state-dir", str(directory / "state")]
    with (directory / "out").open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    soak = BackgroundSoak(process, directory)
    config.stash[KEY] = soak
    return soak


def schedule(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In one process: if the soak's test is selected, start the soak now and run its test last.
    Under xdist every worker collects, so none starts it here: the test starts it itself."""
    if hasattr(config, "workerinput"):
        return
    mine = [
        item for item in items if item.nodeid.endswith("test_soak.py::test_a_three_minute_soak_records_no_violation")
    ]
    if not mine:
        return
    items[:] = [item for item in items if item not in mine] + mine
    start(config)


def stop(config: pytest.Config) -> None:
    soak = config.stash.get(KEY, None)
    if soak is not None and soak.process.poll() is None:
        soak.process.terminate()  # the soak stops the servers it started
        try:
            soak.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            soak.process.kill()
            soak.process.wait(timeout=10)
