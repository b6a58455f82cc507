"""The faults, planned from the seed, and how each is done and undone.

The plan is a deterministic function of the seed: the order of kinds (every kind once per
round, shuffled) and each fault's length. When each one starts depends on when the previous one
converged (faults never overlap, so each convergence time belongs to one fault).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harness.wait import TimedOut, wait_until
from soak.credentials import CredentialStore
from soak.proxy import Proxy
from soak.replicas import Replica, parse_metrics
from soak.servers import Servers
from soak.settings import CREDENTIALS

KINDS = (
    "leader-sigkill",
    "leader-sigstop",
    "apiserver-kill",
    "etcd-restart",
    "openbao-restart",
    "openbao-empty",
    "helper-hang",
    "throttle-429",
)
VAULT_KINDS = {"openbao-restart", "openbao-empty"}
# Source outages must outlast what SyncdSyncFailing needs to fire, or "it did not fire" says nothing:
# the next scheduled run (interval 10 s + jitter 2 s) + the helper's timeout (3 s) + the rule's window
# (5 s) + its `for` (2 s) + scrape and evaluation (2 s) = 24 s.
MIN_SECONDS = {"openbao-restart": 24.0, "openbao-empty": 24.0, "helper-hang": 24.0}


@dataclass(frozen=True)
class PlannedFault:
    kind: str
    seconds: float  # how long the fault lasts (the outage, the stop, the hang, the burst)


def plan(seed: int, count: int, lease_seconds: int, lengths: tuple[float, float]) -> list[PlannedFault]:
    rng = random.Random(f"faults-{seed}")
    planned: list[PlannedFault] = []
    while len(planned) < count:
        round_ = list(KINDS)
        rng.shuffle(round_)
        for kind in round_:
            seconds = lease_seconds + rng.uniform(2, 6) if kind == "leader-sigstop" else rng.uniform(*lengths)
            planned.append(PlannedFault(kind, round(max(seconds, MIN_SECONDS.get(kind, 0.0)), 1)))
    return planned[:count]


class Context(Protocol):
    servers: Servers
    replicas: list[Replica]
    proxy: Proxy | None
    store: CredentialStore


def leader(replicas: list[Replica], timeout: float = 20.0) -> Replica | None:
    """The replica whose /metrics says syncd_leader 1."""

    def leading() -> Replica | None:
        for replica in replicas:
            text = replica.metrics_text()
            if text and parse_metrics(text).get("syncd_leader") == 1.0:
                return replica
        return None

    try:
        wait_until(lambda: leading() is not None, timeout, "a replica with syncd_leader 1", interval=0.3)
    except TimedOut:
        return None
    return leading()


# What each fault rotates as it starts, so that its convergence means something: after it clears,
# syncd must bring a generation it could not have written before (OpenBao faults rotate on refill).
ROTATED_AT_START = {"helper-hang": ("pass-robot",), "openbao-restart": (), "openbao-empty": ()}
ROTATED_BY_DEFAULT = ("kv-robot", "leased-robot")


def rotate_at_start(fault: PlannedFault, soak: Context) -> None:
    if fault.kind == "helper-hang":
        soak.servers.hang_file.touch()  # first, so that no fetch of the new generation slips in
    for plan in CREDENTIALS:
        if plan.name in ROTATED_AT_START.get(fault.kind, ROTATED_BY_DEFAULT):
            soak.store.rotate(plan)


def inject(fault: PlannedFault, soak: Context, on_cleared: Callable[[], None]) -> str:
    """Do the fault, wait its length, undo it; call `on_cleared` once it is undone. Returns a note."""
    action = ACTIONS[fault.kind]
    note = action(soak, fault.seconds)
    on_cleared()
    return note


def _leader_sigkill(soak: Context, seconds: float) -> str:
    target = leader(soak.replicas)
    if target is None:
        return "no leader found"
    target.kill()
    time.sleep(min(seconds, 3.0))  # then it is restarted, as a Deployment would
    target.start()
    return f"killed {target.name}"


def _leader_sigstop(soak: Context, seconds: float) -> str:
    target = leader(soak.replicas)
    if target is None:
        return "no leader found"
    target.signal(signal.SIGSTOP)
    time.sleep(seconds)
    target.signal(signal.SIGCONT)
    return f"stopped {target.name} for {seconds:.1f}s"


def _apiserver_kill(soak: Context, seconds: float) -> str:
    soak.servers.kill_apiserver()
    time.sleep(min(seconds, 5.0))
    soak.servers.start_apiserver()
    return "kube-apiserver SIGKILLed and restarted"


def _etcd_restart(soak: Context, seconds: float) -> str:
    soak.servers.stop_etcd()
    time.sleep(min(seconds, 5.0))
    soak.servers.start_etcd()
    return "etcd stopped and restarted"


def _openbao_restart(soak: Context, seconds: float) -> str:
    soak.servers.vault.stop()
    time.sleep(seconds)
    soak.servers.vault.start()
    soak.store.refill()
    return "OpenBao down, restarted (empty) and refilled at once"


def _openbao_empty(soak: Context, seconds: float) -> str:
    soak.servers.vault.stop()
    soak.servers.vault.start()
    time.sleep(seconds)
    soak.store.rotate_vault()
    return "OpenBao restarted empty, refilled later with new generations"


def _helper_hang(soak: Context, seconds: float) -> str:
    soak.servers.hang_file.touch()
    time.sleep(seconds)
    soak.servers.hang_file.unlink()
    return "docker-credential-soak hanging"


def _throttle(soak: Context, seconds: float) -> str:
    if soak.proxy is None:
        return "no proxy: skipped"
    before = soak.proxy.throttled
    soak.proxy.throttle = 0.5
    time.sleep(seconds)
    soak.proxy.throttle = 0.0
    return f"{soak.proxy.throttled - before} requests answered 429"


ACTIONS: dict[str, Callable[[Context, float], str]] = {
    "leader-sigkill": _leader_sigkill,
    "leader-sigstop": _leader_sigstop,
    "apiserver-kill": _apiserver_kill,
    "etcd-restart": _etcd_restart,
    "openbao-restart": _openbao_restart,
    "openbao-empty": _openbao_empty,
    "helper-hang": _helper_hang,
    "throttle-429": _throttle,
}
