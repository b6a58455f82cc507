"""The daemon's small parts: the trigger queue, the config watcher, the HTTP endpoints."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry

from harness.wait import wait_until
from syncd.daemon.reload import ConfigWatcher
from syncd.daemon.server import HttpServer
from syncd.daemon.triggers import TriggerQueue
from syncd.engine.metrics import Metrics


def test_a_burst_of_requests_collapses_into_one_run_per_key() -> None:
    runs: list[tuple[str, str | None]] = []
    queue = TriggerQueue(runs.append, debounce=0.2)
    queue.start()
    for _ in range(50):
        queue.request(("a", "ns-1"), ("b", "ns-1"), ("b", "ns-2"))
    wait_until(lambda: len(runs) >= 3, 5, "three runs")
    time.sleep(0.3)
    queue.stop()
    assert sorted(runs) == [("a", "ns-1"), ("b", "ns-1"), ("b", "ns-2")]


def test_a_pending_whole_spec_run_absorbs_its_namespace_runs() -> None:
    runs: list[tuple[str, str | None]] = []
    queue = TriggerQueue(runs.append, debounce=0.2)
    queue.start()
    queue.request(("a", "ns-1"), ("a", None), ("a", "ns-2"), ("b", "ns-1"))
    wait_until(lambda: len(runs) >= 2, 5, "two runs")
    time.sleep(0.3)
    queue.stop()
    assert runs == [("a", None), ("b", "ns-1")]


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


def test_config_watcher_sees_a_configmap_style_symlink_swap_and_ignores_touches(tmp_path: Path) -> None:
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

    watcher = ConfigWatcher(link, changed, interval=0.05)
    watcher.start()
    first.touch()
    time.sleep(0.3)
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
