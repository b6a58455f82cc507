"""`syncd run` as a subprocess: peak RSS after its first full sync, then new-namespace latency.

Latency is measured from just before the namespace is created to the moment a watch on
syncd's Secrets (opened before the first namespace) delivers the Secret's ADDED event.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.contenders import SECRET
from bench.measure import memory_kib
from bench.population import PREFIX, create_namespace
from bench.rawkube import Credentials, RawKube
from harness.syncd_process import SyncdProcess
from harness.wait import wait_until
from syncd.core.values import MANAGED_SELECTOR


@dataclass
class SecretWatch:
    """Records when the first ADDED event of our Secret arrives for each namespace."""

    credentials: Credentials
    resource_version: str
    seen: dict[str, float] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SecretWatch:
        threading.Thread(target=self._run, name="bench-watch", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self._stream()
        except requests.RequestException:
            if not self.stopped.is_set():  # after stop(), the apiserver going away is expected
                raise

    def _stream(self) -> None:
        params = {
            "watch": "1",
            "labelSelector": MANAGED_SELECTOR,
            "fieldSelector": f"metadata.name={SECRET}",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "false",
            "timeoutSeconds": "3600",
        }
        cert = (str(self.credentials.client_cert), str(self.credentials.client_key))
        with requests.get(
            f"{self.credentials.url}/api/v1/secrets",
            params=params,
            cert=cert,
            verify=str(self.credentials.ca_cert),
            stream=True,
            timeout=(10, 3600),
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines(chunk_size=1):
                if self.stopped.is_set():
                    return
                if line:
                    self._record(json.loads(line), time.monotonic())

    def _record(self, event: dict[str, Any], at: float) -> None:
        if event.get("type") != "ADDED":
            return
        namespace = str((event.get("object") or {}).get("metadata", {}).get("namespace"))
        with self.changed:
            self.seen.setdefault(namespace, at)
            self.changed.notify_all()

    def wait(self, namespace: str, timeout: float) -> float | None:
        with self.changed:
            self.changed.wait_for(lambda: namespace in self.seen, timeout)
            return self.seen.get(namespace)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 50 values is the 48th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def new_namespace_latency(kube: RawKube, credentials: Credentials, count: int, tag: str) -> dict[str, Any]:
    """Create `count` selected namespaces one at a time; seconds until each one's Secret appeared."""
    version = str(kube.json("/api/v1/secrets?limit=1")["metadata"]["resourceVersion"])
    watch = SecretWatch(credentials, version).start()
    latencies, missed = [], []
    for i in range(count):
        namespace = f"{PREFIX}new-{tag}-{i:02d}"
        started = time.monotonic()
        create_namespace(kube, namespace)
        seen = watch.wait(namespace, timeout=60)
        if seen is None:
            missed.append(namespace)
        else:
            latencies.append(seen - started)
    watch.stopped.set()
    return {
        "count": count,
        "missed": len(missed),
        "p50": round(statistics.median(latencies), 3) if latencies else None,
        "p95": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max": round(max(latencies), 3) if latencies else None,
        "all": [round(v, 3) for v in latencies],
        "namespaces": [f"{PREFIX}new-{tag}-{i:02d}" for i in range(count)],
    }


def start_daemon(
    config: dict[str, Any], work: Path, kubeconfig: Path, ready_timeout: float
) -> tuple[SyncdProcess, RssSampler, float]:
    """Start `syncd run` and an RSS sampler; return them and the seconds until /readyz (every spec's
    first sync attempted)."""
    daemon = SyncdProcess(config, work, kubeconfig, {})
    started = time.monotonic()
    daemon.start(log_level="info")
    assert daemon.process is not None
    sampler = RssSampler(daemon.process.pid).start()
    daemon.wait_ready(timeout=ready_timeout)
    return daemon, sampler, time.monotonic() - started


def sync_durations(daemon: SyncdProcess) -> list[float]:
    """`duration_seconds` of every `sync finished` line the daemon has logged so far."""
    found = []
    for line in daemon.log().splitlines():
        if '"sync finished"' in line:
            found.append(float(json.loads(line).get("duration_seconds", 0.0)))
    return found


def wait_for_syncs(daemon: SyncdProcess, count: int, timeout: float) -> int:
    """Wait until the daemon has logged `count` whole-spec `sync finished` lines; returns how many it has."""
    found = 0

    def enough() -> bool:
        nonlocal found
        found = len(sync_durations(daemon))
        return found >= count

    wait_until(enough, timeout, f"{count} syncs of the daemon", interval=0.2)
    return found


def cpu_seconds(daemon: SyncdProcess) -> float:
    """utime + stime of the daemon process so far."""
    assert daemon.process is not None
    fields = Path(f"/proc/{daemon.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sync_runs(daemon: SyncdProcess) -> float:
    """Scheduled and triggered whole-spec syncs of `regcred` the daemon has finished, by its metric."""
    return sum(
        daemon.metric("syncd_sync_runs_total", secret=SECRET, result=r) for r in ("success", "partial", "failure")
    )


def daemon_memory(daemon: SyncdProcess) -> dict[str, int]:
    assert daemon.process is not None
    return memory_kib(daemon.process.pid)


@dataclass
class RssSampler:
    """VmRSS of a process every `interval` seconds, to show when the peak happens."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> RssSampler:
        threading.Thread(target=self._run, name="bench-rss", daemon=True).start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(self.interval):
            try:
                rss = memory_kib(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.samples.append((round(time.monotonic() - started, 2), rss))

    def timeline(self, points: int = 120) -> list[tuple[float, int]]:
        """At most `points` samples, each the highest of its stretch."""
        self.stopped.set()
        step = max(1, len(self.samples) // points)
        return [max(self.samples[i : i + step], key=lambda s: s[1]) for i in range(0, len(self.samples), step)]
