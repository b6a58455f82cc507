"""EventRecorder: the Events of one sync are created at the same time, at most `per_sync` of them."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from syncd.core.values import EventNote, EventReason
from syncd.kube.events import EventRecorder

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


class Drained:
    """What `send` does with a write's answer."""

    def drain_conn(self) -> None: ...

    def release_conn(self) -> None: ...


@dataclass
class Core:
    """CoreV1Api's Event create. `together`: each call waits until that many are in flight (a
    sequential caller breaks the barrier and fails); `refused`: namespaces answered with a 403."""

    together: int = 1
    refused: frozenset[str] = frozenset()
    created: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.barrier = threading.Barrier(self.together, timeout=10)

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: object) -> Drained:
        with self.lock:
            self.created.append(namespace)
        self.barrier.wait()
        if namespace in self.refused:
            raise ApiException(status=403, reason="Forbidden")
        return Drained()


def recorder(core: Core, **options: Any) -> EventRecorder:
    found = EventRecorder(client.ApiClient(), **options)
    found.core = core  # type: ignore[assignment]  # the one method EventRecorder calls
    return found


def notes(count: int, reason: EventReason = EventReason.SYNCED) -> list[EventNote]:
    return [(f"team-{i:02d}", "regcred", reason, f"syncd created regcred in team-{i:02d}") for i in range(count)]


def test_the_events_of_a_sync_are_created_at_the_same_time() -> None:
    core = Core(together=8)
    assert recorder(core, workers=8).emit(notes(8), NOW) == 8
    assert sorted(core.created) == [f"team-{i:02d}" for i in range(8)]


def test_at_most_per_sync_events_are_sent_warnings_first_and_a_refused_one_is_not_replaced() -> None:
    core = Core(together=4, refused=frozenset({"team-00"}))
    failed = [("team-90", "regcred", EventReason.SYNC_FAILED, "syncd could not write regcred: HTTP 500")]
    written = recorder(core, per_sync=4, workers=4).emit(notes(10) + failed, NOW)
    assert written == 3  # team-00 refused; nothing is sent in its place
    assert sorted(core.created) == ["team-00", "team-01", "team-02", "team-90"]


def test_a_repeat_within_the_interval_is_held_back() -> None:
    core = Core()
    events = recorder(core)
    assert events.emit(notes(1), NOW) == 1
    assert events.emit(notes(1), NOW + dt.timedelta(minutes=1)) == 0
    assert events.emit(notes(1), NOW + dt.timedelta(minutes=11)) == 1
    assert core.created == ["team-00", "team-00"]
