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

from syncd.scheduler import Scheduler


def test_a_run_due_while_the_previous_run_of_its_job_is_still_returning_runs() -> None:
    scheduler = Scheduler(workers=2)
    scheduler.start()
    second_ran = threading.Event()

    def first() -> None:
        scheduler.schedule("spec", dt.datetime.now(dt.UTC), second_ran.set)  # due at once
        time.sleep(0.5)  # still returning when the scheduler fires it

    try:
        scheduler.schedule("spec", dt.datetime.now(dt.UTC), first)
        # Dropped, it never runs: a long wait costs nothing when it passes (5 s failed once under load).
        assert second_ran.wait(30), "the run due while the first was returning was dropped"
    finally:
        scheduler.shutdown(wait=True)
