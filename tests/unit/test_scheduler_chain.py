"""A spec's chain of runs survives a run falling due while the previous one is still returning.

Found by the soak (soak/, issue 13): a config reload rescheduled every spec "now" just as a run of
regcred-helper was ending; APScheduler skipped the new run (max_instances=1 reached) and dropped
the one-shot job, and nothing scheduled the spec again: its rotations stopped reaching the
cluster for 7 minutes, until the replica re-took its lease.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from syncd.daemon.scheduler import Scheduler


def test_a_run_due_while_the_previous_run_of_its_job_is_still_returning_runs() -> None:
    scheduler = Scheduler(workers=2)
    scheduler.start()
    second_ran = threading.Event()

    def first() -> None:
        scheduler.schedule("spec", dt.datetime.now(dt.UTC), second_ran.set)  # due at once
        time.sleep(0.5)  # still returning when the scheduler fires it

    try:
        scheduler.schedule("spec", dt.datetime.now(dt.UTC), first)
        # Generous: a dropped run never comes, so a long wait costs nothing when the code is right,
        # and 5 s failed once under a loaded make test (4af344f; lost again in cdf82a8).
        assert second_ran.wait(30), "the run due while the first was returning was dropped"
    finally:
        scheduler.shutdown(wait=True)


def test_shutting_down_while_a_run_is_being_submitted_does_not_kill_the_scheduler_thread() -> None:
    """APScheduler marks itself stopped before taking its job store lock; a shutdown landing while
    its thread was submitting a run made that thread die on JobLookupError (make test, under load)."""
    died: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda hook: died.append(hook.exc_value or RuntimeError())
    try:
        for _ in range(50):
            scheduler = Scheduler(workers=2)
            scheduler.start()
            ran = threading.Event()
            scheduler.schedule("spec", dt.datetime.now(dt.UTC), ran.set)
            assert ran.wait(30)
            scheduler.shutdown(wait=True)  # right as the scheduler thread removes the submitted job
    finally:
        threading.excepthook = previous
    assert died == []
