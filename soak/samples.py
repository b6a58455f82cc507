"""Every few seconds, each replica's RSS, threads and open fds (/proc) and its syncd_ counters.

Kept for the leak slopes and the metrics checks (soak.judge_metrics), and drawn in the timeline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from soak.replicas import Replica, parse_metrics, process_usage

KEPT = ("_total", "syncd_last_success_timestamp_seconds", "syncd_leader")


@dataclass
class Sample:
    at: float
    replica: str
    pid: int
    rss_bytes: float
    threads: float
    fds: float
    metrics: dict[str, float] = field(default_factory=dict)


def sample(replica: Replica) -> Sample | None:
    pid = replica.pid
    usage = process_usage(pid) if pid is not None else None
    if pid is None or usage is None:
        return None
    text = replica.metrics_text(timeout=1.0)
    kept = (
        {
            k: v
            for k, v in parse_metrics(text).items()
            if k.startswith("syncd_") and any(m in k.split("{")[0] for m in KEPT)
        }
        if text
        else {}
    )
    return Sample(time.time(), replica.name, pid, usage["rss_bytes"], usage["threads"], usage["fds"], kept)


def run_sampler(replicas: list[Replica], samples: list[Sample], stop: threading.Event, every: float = 2.0) -> None:
    while not stop.wait(every):
        for replica in replicas:
            found = sample(replica)
            if found is not None:
                samples.append(found)
