"""The 3-minute soak of test_soak.py, started in the background as soon as it is known to be selected.

It runs beside the rest of the suite (its own servers, its own ports) and its test is moved to
the end of the run, where it only waits for the result: the suite takes about as long as before,
not three and a half minutes more.

In one process, collection starts it. Under pytest-xdist (`make test`) the controller starts it
as soon as a worker reports the soak's test among the ones it collected, so that it occupies no
worker while it runs; the test, on whichever worker, finds it by the run's `testrunuid` in a
folder of that name and waits for the exit code the controller writes there.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SEED = 7
ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--duration", "180s", "--seed", str(SEED), "--namespaces", "60", "--fault-seconds", "12", "16"]
ARGS += ["--fault-gap", "4", "8"]
KEY = pytest.StashKey["BackgroundSoak"]()
TEST = "tests/integration/test_soak.py::test_a_three_minute_soak_records_no_violation"


@dataclass
class BackgroundSoak:
    directory: Path
    process: subprocess.Popen[bytes] | None = None  # None where another process started it

    @property
    def results(self) -> Path:
        return self.directory / "results"

    def output(self) -> str:
        return (self.directory / "out").read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """The soak's exit code, once the process that started it has written it down."""
        exit_code = self.directory / "exit-code"
        deadline = time.monotonic() + timeout
        while not exit_code.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"the soak in {self.directory} did not end within {timeout:.0f}s")
            time.sleep(1)
        return int(exit_code.read_text())

    def _write_exit_code(self) -> None:
        assert self.process is not None
        code = self.process.wait()
        written = self.directory / "exit-code.new"
        written.write_text(str(code))
        written.rename(self.directory / "exit-code")  # whole or absent for a reader


def start(config: pytest.Config, directory: Path | None = None) -> BackgroundSoak:
    directory = directory or Path(tempfile.mkdtemp(prefix="syncd-soak-test-"))
    directory.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "soak", *ARGS, "--out", str(directory / "results")]
    argv += ["--state-dir", str(directory / "state")]
    with (directory / "out").open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    soak = BackgroundSoak(directory, process)
    config.stash[KEY] = soak
    threading.Thread(target=soak._write_exit_code, name="soak-exit-code", daemon=True).start()
    return soak


def run_directory(testrunuid: str) -> Path:
    """Where the controller of an xdist run starts the soak, and its workers find it."""
    return Path(tempfile.gettempdir()) / f"syncd-soak-test-{testrunuid}"


def started(config: pytest.Config) -> BackgroundSoak:
    """The soak this process started, or (on an xdist worker) the one the controller started."""
    soak = config.stash.get(KEY, None)
    if soak is not None:
        return soak
    directory = run_directory(config.workerinput["testrunuid"])  # type: ignore[attr-defined]
    assert directory.is_dir(), f"the controller started no soak in {directory}"
    return BackgroundSoak(directory)


def schedule(config: pytest.Config, items: list[pytest.Item]) -> None:
    """If the soak's test is selected: it runs last, and in one process the soak starts now."""
    mine = [item for item in items if item.nodeid.endswith(TEST)]
    if not mine:
        return
    items[:] = [item for item in items if item not in mine] + mine
    if not hasattr(config, "workerinput"):
        start(config)


def collected_by_a_worker(config: pytest.Config, testrunuid: str, ids: list[str]) -> None:
    """xdist's controller: the first worker that collected the soak's test has it started."""
    if KEY not in config.stash and any(nodeid.endswith(TEST) for nodeid in ids):
        start(config, run_directory(testrunuid))


def stop(config: pytest.Config) -> None:
    soak = config.stash.get(KEY, None)
    if soak is not None and soak.process is not None and soak.process.poll() is None:
        soak.process.terminate()  # the soak stops the servers it started
        try:
            soak.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            soak.process.kill()
            soak.process.wait(timeout=10)
