"""Judging what the replicas exported and how they grew: counters never go down (within one
process), syncd_last_success_timestamp_seconds moves past each fault's end, and the slope of
RSS, threads and fds of each process once it has settled.

Settled: a standby holds watch stores only; when it first becomes leader it starts writing, and
its RSS climbs over its first terms (80 -> 89-96 MB at 300 namespaces) to a plateau it keeps
as standby too (freed memory stays in Python's arenas). A fit over the whole life, which
contains that climb, read as +35 to +117 MB/h "leaks" in the 10- and 20-minute runs; a fit per
leadership term is never long enough to judge (a fault a minute changes the leader). So a
process is judged over the later half of its life after it first led (+ warm-up): a leak is
growth that keeps going; a climb that stops is warm-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from soak.samples import Sample

WARMUP_SECONDS = 60.0  # imports, caches and connection pools fill first
# A leak is growth the noise cannot explain: an RSS slope above this over at least LEAK_MIN_SECONDS.
RSS_LEAK_MB_PER_HOUR = 20.0
LEAK_MIN_SECONDS = 300.0


@dataclass(frozen=True)
class Slope:
    replica: str
    pid: int
    since: float  # seconds into the process's life where the judged (settled) part starts
    seconds: float
    rss_mb_per_hour: float
    threads_per_hour: float
    fds_per_hour: float
    rss_mb_first: float
    rss_mb_last: float


def counters_monotonic(samples: list[Sample]) -> list[dict[str, Any]]:
    """Every `_total` series that went down between two scrapes of the same process."""
    last: dict[tuple[int, str], float] = {}
    found = []
    for item in sorted(samples, key=lambda s: s.at):
        for key, value in item.metrics.items():
            if "_total" not in key.split("{")[0]:
                continue
            before = last.get((item.pid, key))
            if before is not None and value < before:
                found.append({"at": item.at, "replica": item.replica, "series": key, "from": before, "to": value})
            last[(item.pid, key)] = value
    return found


def last_success_after(samples: list[Sample], since: float, secrets: Iterable[str]) -> float | None:
    """Seconds after `since` until every spec's syncd_last_success_timestamp_seconds (any replica) passed it."""
    waiting = set(secrets)
    for item in sorted((s for s in samples if s.at >= since), key=lambda s: s.at):
        for secret in list(waiting):
            value = item.metrics.get(f'syncd_last_success_timestamp_seconds{{secret="{secret}"}}')
            if value is not None and value > since:
                waiting.discard(secret)
        if not waiting:
            return item.at - since
    return None


def _fit(points: list[tuple[float, float]]) -> float:
    """Least-squares slope per second."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return 0.0 if var == 0 else sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def settled(items: list[Sample]) -> list[Sample]:
    """One process's samples (in time order) from the later half of its life after it first led
    (a process that never led: after it started), each start followed by the warm-up."""
    led = next((s.at for s in items if s.metrics.get("syncd_leader") == 1.0), items[0].at)
    after = [s for s in items if s.at - led >= WARMUP_SECONDS]
    if not after:
        return []
    middle = after[0].at + (after[-1].at - after[0].at) / 2
    return [s for s in after if s.at >= middle]


def slopes(samples: list[Sample]) -> list[Slope]:
    by_process: dict[tuple[str, int], list[Sample]] = {}
    for item in samples:
        by_process.setdefault((item.replica, item.pid), []).append(item)
    found = []
    for (replica, pid), items in by_process.items():
        items.sort(key=lambda s: s.at)
        kept = settled(items)
        if len(kept) >= 5:
            found.append(_slope(replica, pid, kept[0].at - items[0].at, kept))
    return found


def _slope(replica: str, pid: int, since: float, kept: list[Sample]) -> Slope:
    hour = 3600.0
    return Slope(
        replica,
        pid,
        since,
        kept[-1].at - kept[0].at,
        _fit([(s.at, s.rss_bytes / 2**20) for s in kept]) * hour,
        _fit([(s.at, s.threads) for s in kept]) * hour,
        _fit([(s.at, s.fds) for s in kept]) * hour,
        kept[0].rss_bytes / 2**20,
        kept[-1].rss_bytes / 2**20,
    )


def leaks(found: list[Slope]) -> list[Slope]:
    return [s for s in found if s.seconds >= LEAK_MIN_SECONDS and s.rss_mb_per_hour > RSS_LEAK_MB_PER_HOUR]
