"""Counters read at the servers, and what the machine was doing meanwhile.

- the apiserver's own `apiserver_request_total` (every series), scraped with the admin cert;
- OpenBao's audit log, one JSON line per request and per response;
- peak RSS (VmHWM) of a process;
- CPU used on the machine during a phase, split into this benchmark's process tree and the rest
  (the machine is shared: "the rest" says how noisy a figure is).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.rawkube import RawKube
from harness.wait import TimedOut, wait_until

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
# What syncd reads and writes. Anything else in a diff is the apiserver talking to itself
# (its identity Lease, APF status) or the scrape.
SYNCD_RESOURCES = {"namespaces", "secrets", "serviceaccounts", "events"}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"}


def request_totals(kube: RawKube) -> Counter[tuple[str, str, str]]:
    """apiserver_request_total summed by (verb, resource, subresource), across codes and scopes."""
    totals: Counter[tuple[str, str, str]] = Counter()
    for line in kube.ok("GET", "/metrics").decode().splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match["labels"]))
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
            totals[key] += int(float(match["value"]))
    return totals


@dataclass
class RequestDiff:
    total: int
    by_series: dict[str, int]
    syncd: int
    syncd_writes: int
    syncd_watches: int = 0  # long-running WATCH requests (counted when they end), among `syncd`

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "syncd": self.syncd,
            "syncd_writes": self.syncd_writes,
            "syncd_watches": self.syncd_watches,
            "by": self.by_series,
        }


def diff_requests(before: Counter[tuple[str, str, str]], after: Counter[tuple[str, str, str]]) -> RequestDiff:
    """What happened between two scrapes, minus the second scrape's own GET /metrics."""
    delta = Counter({key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)})
    delta[("GET", "", "/metrics")] -= 1
    delta = +delta
    syncd = {key: n for key, n in delta.items() if key[1] in SYNCD_RESOURCES}
    return RequestDiff(
        total=sum(delta.values()),
        by_series={" ".join(part for part in key if part): n for key, n in sorted(delta.items())},
        syncd=sum(syncd.values()),
        syncd_writes=sum(n for key, n in syncd.items() if key[0] in WRITE_VERBS),
        syncd_watches=sum(n for key, n in syncd.items() if key[0] == "WATCH"),
    )


@dataclass
class AuditLog:
    """OpenBao's file audit log: every request and response as one JSON line."""

    path: Path
    offset: int = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def requests_since_mark(self) -> list[str]:
        """`operation path` of each request logged since `mark()`."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            lines = log.read().splitlines()
        found = []
        for line in lines:
            entry = json.loads(line)
            if entry.get("type") == "request":
                request = entry.get("request") or {}
                found.append(f"{request.get('operation')} {request.get('path')}")
        return found


def wait_for_audit(audit: AuditLog, at_least: int, timeout: float = 5.0) -> list[str]:
    """The audit device writes asynchronously to the response: give it a moment."""
    with contextlib.suppress(TimedOut):  # fewer than expected is the caller's finding, not an error
        wait_until(lambda: len(audit.requests_since_mark()) >= at_least, timeout, "audit entries", interval=0.05)
    return audit.requests_since_mark()


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of a live process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


def _jiffies_of(pid: int) -> int:
    """utime + stime + cutime + cstime: the process and every descendant it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11:15])


def _parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def our_jiffies(root: int, exclude: frozenset[int] = frozenset()) -> int:
    """CPU of `root` and every live descendant (reaped ones are in their parent's cutime), but `exclude`."""
    parents = {int(p): _parent_of(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    total = 0
    for pid in parents:
        ancestor = pid
        while ancestor and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root and pid not in exclude:
            total += _jiffies_of(pid)
    return total


def _busy_jiffies() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


def _servers_jiffies(servers: list[int]) -> int:
    return sum(_jiffies_of(pid) for pid in servers)


@dataclass
class CpuMeter:
    """CPU used during a phase by the servers (apiserver, etcd, OpenBao), by the client side.

    The client side is this process and its other descendants: syncd in-process or as a
    subprocess, kubectl, the floor. `others` is everyone else's share of the machine (it is
    shared: that says how noisy a figure is). CPU seconds are steadier than wall time under load.
    """

    servers: list[int] = field(default_factory=list)
    root: int = field(default_factory=os.getpid)
    controllers: list[int] = field(default_factory=list)  # kube-controller-manager, kube-scheduler
    started: float = 0.0
    busy: int = 0
    ours: int = 0
    server: int = 0
    controller: int = 0

    def start(self) -> CpuMeter:
        self.started, self.busy = time.monotonic(), _busy_jiffies()
        self.ours, self.server = our_jiffies(self.root, self._apart()), _servers_jiffies(self.servers)
        self.controller = _servers_jiffies(self.controllers)
        return self

    def _apart(self) -> frozenset[int]:
        return frozenset(self.servers + self.controllers)

    def stop(self) -> dict[str, float]:
        seconds = time.monotonic() - self.started
        tick = os.sysconf("SC_CLK_TCK")
        capacity = seconds * tick * (os.cpu_count() or 1)
        busy, ours = _busy_jiffies() - self.busy, our_jiffies(self.root, self._apart()) - self.ours
        server = _servers_jiffies(self.servers) - self.server
        controller = _servers_jiffies(self.controllers) - self.controller
        others = max(0, busy - ours - server - controller)
        return {
            "seconds": round(seconds, 3),
            "client_cpu_seconds": round(ours / tick, 2),
            "server_cpu_seconds": round(server / tick, 2),
            "controller_cpu_seconds": round(controller / tick, 2),
            "machine_busy": round(busy / capacity, 3) if capacity else 0.0,
            "others": round(others / capacity, 3) if capacity else 0.0,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
