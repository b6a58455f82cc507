"""Scheduling policy (Cadence) and the runs of specs (SpecRuns), with a fake scheduler and a fake clock."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from syncd.config import Config, SecretSpec, parse_config
from syncd.daemon.runs import SpecRuns
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from syncd.engine.timing import MIN_DELAY, Cadence, refresh_at
from tests.unit.fakes import FakeCluster, FakeSource

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
H = dt.timedelta(hours=1)
CONFIG = parse_config(
    {
        "vault": {"address": "https://vault.invalid"},
        "credentials": [
            {"name": "a", "registry": "a.example", "vault": {"path": "a"}},
            {"name": "b", "registry": "b.example", "vault": {"path": "b"}},
        ],
        "secrets": [
            {"name": "pull", "credentials": ["a"], "namespaces": {"patterns": ["team-*"]}},
            {"name": "other", "credentials": ["b"], "namespaces": {"names": ["team-1"]}},
        ],
        "schedule": {"interval": "1h", "jitter": "0s", "retry": {"min": "5s", "max": "1m"}},
    }
)
SPEC = CONFIG.secrets[0]


def cadence(lifetimes: list[tuple[dt.datetime, dt.datetime]] | None = None) -> Cadence:
    return Cadence(lambda _: list(lifetimes or []), rng=random.Random(1))


def test_consecutive_failures_back_off_and_a_success_resets_them() -> None:
    policy = cadence()
    runs = [
        policy.next_run(SPEC, CONFIG.schedule, failed=failed, now=NOW) - NOW
        for failed in (True, True, True, False, True)
    ]
    assert runs == [5 * S, 10 * S, 20 * S, H, 5 * S]


def test_a_credential_due_for_refresh_brings_the_next_run_forward() -> None:
    policy = cadence([(NOW, NOW + 30 * dt.timedelta(minutes=1))])
    refresh = refresh_at(NOW, NOW + 30 * dt.timedelta(minutes=1), CONFIG.schedule.refresh_before_expiry)
    assert policy.next_run(SPEC, CONFIG.schedule, failed=False, now=NOW) == refresh < NOW + H


def test_a_reloads_run_keeps_the_run_that_was_due_unless_it_failed() -> None:
    policy = cadence()
    pending = NOW + 10 * dt.timedelta(minutes=1)
    assert policy.next_run(SPEC, CONFIG.schedule, failed=False, now=NOW, pending=pending) == pending
    assert policy.next_run(SPEC, CONFIG.schedule, failed=False, now=NOW, pending=NOW - H) == NOW + MIN_DELAY
    assert policy.next_run(SPEC, CONFIG.schedule, failed=True, now=NOW, pending=pending) == NOW + 5 * S


def test_a_forgotten_spec_starts_again_without_failures() -> None:
    policy = cadence()
    for _ in range(3):
        policy.next_run(SPEC, CONFIG.schedule, failed=True, now=NOW)
    policy.forget(["pull"])
    assert policy.next_run(SPEC, CONFIG.schedule, failed=True, now=NOW) == NOW + 5 * S


class FakeJobs:
    """The scheduler's interface; jobs run when the test says so."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[dt.datetime, Callable[[], None]]] = {}

    def schedule(self, job_id: str, at: dt.datetime, run: Callable[[], None]) -> None:
        self.jobs[job_id] = (at, run)

    def cancel(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def next_run(self, job_id: str) -> dt.datetime | None:
        job = self.jobs.get(job_id)
        return job[0] if job else None

    def run(self, job_id: str) -> None:
        self.jobs.pop(job_id)[1]()

    def at(self, job_id: str) -> dt.datetime:
        return self.jobs[job_id][0]


class Setup:
    def __init__(self, config: Config = CONFIG) -> None:
        self.config = config
        self.now = NOW
        self.leading = True
        self.source = FakeSource({"a": ("user-a", "secret-a"), "b": ("user-b", "secret-b")})
        self.cluster = FakeCluster(namespaces={"team-1": {}, "team-2": {}})
        self.reconciler = Reconciler(
            config=config,
            sources={"vault": self.source},
            cluster=self.cluster,
            metrics=Metrics(CollectorRegistry()),
            workers=2,
            clock=lambda: self.now,
        )
        self.jobs = FakeJobs()
        self.runs = SpecRuns(
            self.reconciler,
            self.jobs,
            Cadence(self.reconciler.fetcher.lifetimes, rng=random.Random(1)),
            config=lambda: self.config,
            may_write=lambda: self.leading,
            stopping=threading.Event(),
            clock=lambda: self.now,
        )

    def spec(self, name: str) -> SecretSpec:
        return next(s for s in self.config.secrets if s.name == name)


def test_a_scheduled_run_syncs_and_schedules_its_successor_after_the_interval() -> None:
    setup = Setup()
    setup.runs.schedule_now()
    assert {name: setup.jobs.at(name) for name in ("pull", "other")} == {"pull": NOW, "other": NOW}
    assert setup.runs.unattempted() == {"pull", "other"}
    setup.jobs.run("pull")
    assert setup.jobs.at("pull") == NOW + H
    assert set(setup.cluster.secrets) == {("team-1", "pull"), ("team-2", "pull")}
    assert setup.runs.unattempted() == {"other"}


def test_a_run_after_a_reload_uses_the_cache_and_keeps_the_due_time() -> None:
    setup = Setup()
    setup.runs.schedule_now()
    setup.jobs.run("pull")
    setup.now = NOW + 30 * dt.timedelta(minutes=1)  # far outside the shared-fetch window
    setup.runs.schedule_now(["pull"], after_reload=True)
    setup.jobs.run("pull")
    assert setup.source.calls == ["a"]
    assert setup.jobs.at("pull") == NOW + H  # the regular refresh is not postponed


def test_a_standby_or_a_removed_spec_runs_nothing_and_schedules_nothing() -> None:
    setup = Setup()
    setup.leading = False
    setup.runs.schedule_now()
    setup.jobs.run("pull")
    assert setup.source.calls == []
    assert "pull" not in setup.jobs.jobs
    setup.leading = True
    setup.config = parse_config({**CONFIG.model_dump(mode="json"), "secrets": [CONFIG.secrets[1].model_dump()]})
    setup.jobs.run("other")
    setup.runs.schedule_now(["pull"])
    assert "pull" not in setup.jobs.jobs


def test_a_triggered_run_waits_for_a_first_fetch_then_writes_one_namespace_from_the_cache() -> None:
    setup = Setup()
    setup.runs.run_triggered(("pull", "team-1"))
    assert setup.cluster.secrets == {}
    setup.runs.schedule_now(["pull"])
    setup.jobs.run("pull")
    setup.cluster.namespaces["team-3"] = {}
    setup.runs.run_triggered(("pull", "team-3"))
    setup.runs.run_triggered(("pull", None))
    assert ("team-3", "pull") in setup.cluster.secrets
    assert setup.source.calls == ["a"]


def test_once_stopping_no_successor_is_scheduled() -> None:
    setup = Setup()
    setup.runs.schedule_now(["pull"])
    _, run = setup.jobs.jobs.pop("pull")
    setup.runs.stopping.set()
    run()
    assert setup.jobs.jobs == {}
