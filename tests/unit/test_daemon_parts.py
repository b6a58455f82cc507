"""The daemon's small parts: the trigger queue, the config watcher, the HTTP endpoints."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from harness.wait import wait_until
from syncd.daemon import reload
from syncd.daemon.reload import ConfigWatcher
from syncd.daemon.server import HttpServer
from syncd.daemon.triggers import TriggerQueue
from syncd.engine.metrics import Metrics

# Requested after the keys under test, it runs after every run they caused: the queue runs its
# batches in order and sorts each by key, where this one comes last. Once it ran, nothing else will.
BARRIER = ("~barrier", None)


def test_a_burst_of_requests_collapses_into_one_run_per_key() -> None:
    runs: list[tuple[str, str | None]] = []
    queue = TriggerQueue(runs.append, debounce=0.2)
    queue.start()
    for _ in range(50):
        queue.request(("a", "ns-1"), ("b", "ns-1"), ("b", "ns-2"))
    queue.request(BARRIER)
    wait_until(lambda: BARRIER in runs, 5, "the barrier's run")
    queue.stop()
    assert sorted(runs) == [("a", "ns-1"), ("b", "ns-1"), ("b", "ns-2"), BARRIER]


def test_a_pending_whole_spec_run_absorbs_its_namespace_runs() -> None:
    runs: list[tuple[str, str | None]] = []
    queue = TriggerQueue(runs.append, debounce=0.2)
    queue.start()
    queue.request(("a", "ns-1"), ("a", None), ("a", "ns-2"), ("b", "ns-1"))
    queue.request(BARRIER)
    wait_until(lambda: BARRIER in runs, 5, "the barrier's run")
    queue.stop()
    assert runs == [("a", None), ("b", "ns-1"), BARRIER]


def test_a_failing_run_does_not_stop_the_queue() -> None:
    runs: list[str] = []

    def run(key: tuple[str, str | None]) -> None:
        runs.append(key[0])
        if key[0] == "bad":
            raise RuntimeError("boom")

    queue = TriggerQueue(run, debounce=0.01)
    queue.start()
    queue.request(("bad", None))
    wait_until(lambda: runs == ["bad"], 5, "the failing run")
    queue.request(("good", None))
    wait_until(lambda: runs == ["bad", "good"], 5, "the run after it")
    queue.stop()


def test_config_watcher_sees_a_configmap_style_symlink_swap_and_ignores_touches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.write_text("a: 1\n")
    second.write_text("a: 2\n")
    link = tmp_path / "syncd.yaml"
    link.symlink_to(first)
    changes = threading.Event()
    count: list[int] = []

    def changed() -> None:
        count.append(1)
        changes.set()

    # The watcher's polls and content reads, counted: a touch is ignored once a read of the
    # touched file was followed by another poll (the read's outcome is acted on in between).
    polls, reads = [0], [0]

    def fingerprint(path: Path) -> tuple[int, int, int, int] | None:
        polls[0] += 1
        return real_fingerprint(path)

    def digest(path: Path) -> str | None:
        reads[0] += 1
        return real_digest(path)

    real_fingerprint, real_digest = reload._fingerprint, reload._digest
    monkeypatch.setattr(reload, "_fingerprint", fingerprint)
    monkeypatch.setattr(reload, "_digest", digest)
    watcher = ConfigWatcher(link, changed, interval=0.05)
    watcher.start()
    later = first.stat().st_mtime_ns + 1_000_000_000  # a touch the clock's granularity cannot hide
    os.utime(first, ns=(later, later))
    wait_until(lambda: reads[0] == 2, 5, "the touched file read")  # the first at start, the second for the touch
    after_read = polls[0]
    wait_until(lambda: polls[0] > after_read, 5, "the poll after that read")
    assert count == []
    link.unlink()
    link.symlink_to(second)
    assert changes.wait(5)
    watcher.stop()
    assert count == [1]


def test_http_endpoints() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    ready = {"ok": False}
    server = HttpServer("127.0.0.1:0", registry, healthy=lambda: (True, "ok"), ready=lambda: (ready["ok"], "waiting"))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 503
        ready["ok"] = True
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "syncd_build_info" in metrics.text
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    finally:
        server.stop()
