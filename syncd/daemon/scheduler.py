"""A thin wrapper over APScheduler 3.x (the only module that imports it).

Each secret spec is one job that reschedules itself after every run: the next time depends on
the outcome (interval with jitter, earlier when a credential expires, backoff after a failure),
which a fixed IntervalTrigger cannot express. One job id per spec, and SpecRuns' per-spec lock,
mean runs of a spec never overlap; a pool thread per spec means a slow Vault never blocks the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, *, workers: int = 10) -> None:
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            # Not max_instances=1: APScheduler *skips* a run due while the previous instance of its job
            # is still returning, and a skipped one-shot job is gone, with nothing to schedule the next:
            # the spec was never synced again (the soak saw it after a reload rescheduled a spec just
            # as its run ended). The per-spec lock in syncd.daemon.runs keeps runs from overlapping instead.
            job_defaults={"max_instances": 3, "coalesce": True, "misfire_grace_time": None},
            timezone=dt.UTC,
        )
        self._scheduler.add_listener(self._on_problem, EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def schedule(self, job_id: str, at: dt.datetime, run: Callable[[], None]) -> None:
        """Run `run` at `at` (replacing any pending run of the same job)."""
        self._scheduler.add_job(run, DateTrigger(run_date=at, timezone=dt.UTC), id=job_id, replace_existing=True)

    def cancel(self, job_id: str) -> None:
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def next_run(self, job_id: str) -> dt.datetime | None:
        job = self._scheduler.get_job(job_id)
        return job.next_run_time if job is not None else None

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop scheduling; with `wait`, return only after running jobs (and their writes) finish."""
        if self._scheduler.running:
            # APScheduler marks itself stopped before it takes its job store lock, and a job
            # submitted just then cannot be removed from the store: its scheduler thread dies on
            # JobLookupError (seen in make test). Paused first, and one pass of the lock (get_jobs)
            # waits out a pass over the due jobs that had begun.
            self._scheduler.pause()
            self._scheduler.get_jobs()
            self._scheduler.shutdown(wait=wait)

    @staticmethod
    def _on_problem(event: JobExecutionEvent) -> None:
        if event.exception is not None:
            log.error("scheduled job %s raised %s", event.job_id, type(event.exception).__name__)
        else:
            log.warning("scheduled job %s missed its run time", event.job_id)
