"""The soak's background loops: rotations of each credential and config reloads."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from soak.credentials import CredentialStore
from soak.observer import Observer
from soak.settings import CREDENTIALS, Settings


@dataclass
class RotationCounts:
    done: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    failed: int = 0


def run_rotations(
    *,
    settings: Settings,
    store: CredentialStore,
    observer: Observer,
    vault_down: Callable[[], bool],
    counts: RotationCounts,
    stop: threading.Event,
) -> None:
    """Each credential rotates every 30-90 s; a rotation waits while the previous one has not reached
    every namespace, or a fault has not converged yet, so that a Secret two generations behind is
    syncd's fault, never the pacing's. Vault credentials wait while OpenBao is down or empty."""
    rng = random.Random(f"rotations-{settings.seed}")
    due = {plan.name: time.time() + rng.uniform(*settings.rotation_every) for plan in CREDENTIALS}
    while not stop.wait(1.0):
        for plan in CREDENTIALS:
            if time.time() < due[plan.name]:
                continue
            with store.turn:  # a fault starting checks and rotates under the same lock
                source_down = plan.source == "vault" and vault_down()
                if observer.settling() or not observer.converged(plan.name) or source_down:
                    counts.deferred += 1
                    continue
                try:
                    store.rotate(plan)
                except Exception:
                    counts.failed += 1
                else:
                    counts.done[plan.name] = counts.done.get(plan.name, 0) + 1
            due[plan.name] = time.time() + rng.uniform(*settings.rotation_every)


def run_reloads(
    settings: Settings, observer: Observer, reload: Callable[[int], None], counts: dict[str, int], stop: threading.Event
) -> None:
    """Every 40-100 s, regcred-kv's selector changes (tiers a,b <-> a,b,c) in both replicas' config files;
    a reload that falls due while a fault settles waits for it."""
    rng = random.Random(f"reloads-{settings.seed}")
    variant = 0
    due = time.time() + rng.uniform(40, 100)
    while not stop.wait(1.0):
        if time.time() < due or observer.settling():
            continue
        variant += 1
        reload(variant)
        counts["reloads"] = counts.get("reloads", 0) + 1
        due = time.time() + rng.uniform(40, 100)
