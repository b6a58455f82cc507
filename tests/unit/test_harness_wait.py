"""harness.wait.wait_until: the one polling helper of tests, bench and soak."""

from __future__ import annotations

import itertools

import pytest

from harness.wait import TimedOut, wait_until


def test_returns_once_the_condition_holds() -> None:
    calls = itertools.count(1)
    took = wait_until(lambda: next(calls) >= 3, 5, "the third call", interval=0.01)
    assert next(calls) == 4  # polled exactly until it held
    assert 0 <= took < 5


def test_a_connection_error_means_not_yet_and_is_named_if_time_runs_out() -> None:
    calls: list[int] = []

    def probe() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionRefusedError("refused")
        return True

    wait_until(probe, 5, "a server", interval=0.01)
    assert len(calls) == 2

    def refused() -> bool:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(TimedOut, match=r"waiting for the server \(last error: connection refused\)"):
        wait_until(refused, 0.05, "the server", interval=0.01)


def test_any_other_error_ends_the_wait_at_once() -> None:
    calls: list[int] = []

    def broken() -> bool:
        calls.append(1)
        raise KeyError("typo")

    with pytest.raises(KeyError):
        wait_until(broken, 5, "a broken condition")
    assert calls == [1]


def test_a_timeout_fails_a_test_as_an_assertion_naming_what() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for nothing at all$"):
        wait_until(lambda: False, 0.05, "nothing at all", interval=0.01)
