"""Leader election decisions, as pure functions of a Lease record and an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes import client

from syncd.kube.elector import own_client
from syncd.kube.lease import (
    LeaseRecord,
    can_acquire,
    claim_spec,
    format_micro_time,
    holds_lease,
    lease_expired,
    parse_micro_time,
    release_spec,
    renew_deadline_passed,
    seconds_left,
    timings_for,
)

T0 = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=dt.UTC)
ME = "pod-a_1111"
OTHER = "pod-b_2222"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def held(holder: str = OTHER, *, renewed: float = 0.0, seconds: int = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(
        resource_version="42",
        holder=holder,
        lease_seconds=seconds,
        acquire_time=at(-100),
        renew_time=at(renewed),
        transitions=transitions,
    )


class TestTimings:
    def test_derived_from_the_lease_like_client_go(self) -> None:
        timings = timings_for(dt.timedelta(seconds=15))
        assert timings.retry_period == dt.timedelta(seconds=5)
        assert timings.renew_deadline == dt.timedelta(seconds=10)
        assert timings.lease_seconds == 15
        assert timings.retry_period < timings.renew_deadline < timings.lease_duration

    def test_retry_period_has_a_floor(self) -> None:
        assert timings_for(dt.timedelta(seconds=0.3)).retry_period == dt.timedelta(seconds=0.2)

    def test_lease_seconds_round_up_and_are_at_least_one(self) -> None:
        assert timings_for(dt.timedelta(seconds=2.1)).lease_seconds == 3
        assert timings_for(dt.timedelta(seconds=0.5)).lease_seconds == 1

    def test_request_timeout_is_bounded(self) -> None:
        assert timings_for(dt.timedelta(seconds=15)).request_timeout == 5.0
        assert timings_for(dt.timedelta(seconds=2)).request_timeout == 1.0

    def test_rejects_a_non_positive_lease(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            timings_for(dt.timedelta(0))


class TestMicroTime:
    def test_format_always_has_six_digits_and_z(self) -> None:
        assert format_micro_time(T0) == "2026-11-27T10:00:00.000000Z"
        assert format_micro_time(T0 + dt.timedelta(microseconds=7)) == "2026-11-27T10:00:00.000007Z"

    def test_format_converts_to_utc(self) -> None:
        cet = dt.timezone(dt.timedelta(hours=1))
        assert format_micro_time(dt.datetime(2026, 11, 27, 11, 0, tzinfo=cet)) == "2026-11-27T10:00:00.000000Z"

    def test_round_trip(self) -> None:
        moment = T0 + dt.timedelta(microseconds=123456)
        assert parse_micro_time(format_micro_time(moment)) == moment

    @pytest.mark.parametrize("value", [None, "", "yesterday", 12])
    def test_unreadable_is_none(self, value: object) -> None:
        assert parse_micro_time(value) is None

    def test_seconds_precision_time_parses(self) -> None:
        assert parse_micro_time("2026-11-27T10:00:00Z") == T0


class TestLeaseRecord:
    def test_from_a_lease(self) -> None:
        lease = {
            "metadata": {"name": "syncd", "resourceVersion": "7"},
            "spec": {
                "holderIdentity": ME,
                "leaseDurationSeconds": 15,
                "acquireTime": "2026-11-27T09:00:00.000000Z",
                "renewTime": "2026-11-27T10:00:00.000000Z",
                "leaseTransitions": 2,
            },
        }
        record = LeaseRecord.from_lease(lease)
        assert record == LeaseRecord("7", ME, 15, at(-3600), T0, 2)

    def test_from_a_fresh_empty_lease(self) -> None:
        record = LeaseRecord.from_lease({"metadata": {"resourceVersion": "1"}, "spec": {}})
        assert record == LeaseRecord("1")
        assert lease_expired(record, T0)

    def test_same_term_ignores_resource_version(self) -> None:
        assert held().same_term(LeaseRecord("99", OTHER, 15, None, at(0), 3))
        assert not held().same_term(held(renewed=1))
        assert not held().same_term(held(ME))
        assert not held().same_term(None)


class TestExpiry:
    def test_lease_is_live_until_renew_plus_duration(self) -> None:
        record = held(renewed=0, seconds=15)
        assert not lease_expired(record, at(14.999))
        assert lease_expired(record, at(15))

    def test_never_renewed_is_expired(self) -> None:
        assert lease_expired(LeaseRecord("1", OTHER, 15), T0)


class TestCanAcquire:
    def test_free_lease(self) -> None:
        assert can_acquire(held(""), ME, observed_at=T0, now=T0)

    def test_our_own_lease(self) -> None:
        assert can_acquire(held(ME), ME, observed_at=T0, now=T0)

    def test_someone_elses_live_lease(self) -> None:
        assert not can_acquire(held(OTHER), ME, observed_at=T0, now=at(14.9))

    def test_someone_elses_lease_unchanged_for_a_whole_duration(self) -> None:
        assert can_acquire(held(OTHER), ME, observed_at=T0, now=at(15))

    def test_counts_from_our_observation_not_the_holders_clock(self) -> None:
        # The holder's clock runs an hour behind: by renewTime the lease looks long expired,
        # but we saw it change just now, so the holder may still be alive.
        record = held(OTHER, renewed=-3600)
        assert lease_expired(record, T0)
        assert not can_acquire(record, ME, observed_at=T0, now=at(1))
        assert can_acquire(record, ME, observed_at=T0, now=at(15))


class TestRenewDeadline:
    def test_passed(self) -> None:
        deadline = dt.timedelta(seconds=10)
        assert not renew_deadline_passed(T0, deadline, at(9.9))
        assert renew_deadline_passed(T0, deadline, at(10))
        assert renew_deadline_passed(None, deadline, T0)

    def test_holder_steps_down_before_a_standby_may_take_over(self) -> None:
        """The safety margin: renew deadline < lease duration, for every lease length."""
        for seconds in (1, 2, 5, 15, 60, 137):
            timings = timings_for(dt.timedelta(seconds=seconds))
            record = held(ME, renewed=0, seconds=timings.lease_seconds)
            step_down = T0 + timings.renew_deadline
            assert not holds_lease(record, ME, T0, timings, step_down)
            # A standby that saw this renewal (at T0 at the earliest) may take over only later.
            assert not can_acquire(record, OTHER, observed_at=T0, now=step_down)

    def test_seconds_left(self) -> None:
        deadline = dt.timedelta(seconds=10)
        assert seconds_left(T0, deadline, at(4)) == 6.0
        assert seconds_left(T0, deadline, at(11)) == -1.0
        assert seconds_left(None, deadline, T0) == 0.0

    def test_holds_lease(self) -> None:
        timings = timings_for(dt.timedelta(seconds=15))
        record = held(ME, renewed=0)
        assert holds_lease(record, ME, T0, timings, at(9))
        assert not holds_lease(record, ME, T0, timings, at(10))  # renew deadline
        assert not holds_lease(record, ME, at(-20), timings, at(1))  # no renew for 21s
        assert not holds_lease(held(OTHER), ME, T0, timings, at(1))
        assert not holds_lease(None, ME, T0, timings, at(1))
        stale = held(ME, renewed=-16)  # renewTime + duration in the past, whatever we believe
        assert not holds_lease(stale, ME, T0, timings, at(1))


class TestClaim:
    def test_renewal_keeps_acquire_time_and_transitions(self) -> None:
        spec = claim_spec(held(ME, transitions=3), ME, 15, at(5))
        assert spec == {
            "holderIdentity": ME,
            "leaseDurationSeconds": 15,
            "acquireTime": format_micro_time(at(-100)),
            "renewTime": format_micro_time(at(5)),
            "leaseTransitions": 3,
        }

    def test_takeover_counts_a_transition_and_restarts_acquire_time(self) -> None:
        spec = claim_spec(held(OTHER, transitions=3), ME, 15, at(20))
        assert spec["holderIdentity"] == ME
        assert spec["leaseTransitions"] == 4
        assert spec["acquireTime"] == spec["renewTime"] == format_micro_time(at(20))

    def test_taking_a_released_lease_is_a_transition(self) -> None:
        assert claim_spec(held(""), ME, 15, T0)["leaseTransitions"] == 4

    def test_first_holder_of_a_new_lease_is_no_transition(self) -> None:
        assert claim_spec(LeaseRecord("1"), ME, 15, T0)["leaseTransitions"] == 0

    def test_release_frees_the_lease_now(self) -> None:
        spec = release_spec(held(ME, transitions=3), at(1))
        assert spec["holderIdentity"] is None
        assert spec["leaseDurationSeconds"] == 1
        assert spec["renewTime"] == format_micro_time(at(1))
        assert spec["leaseTransitions"] == 3


def test_own_client_copies_the_configuration_without_retries() -> None:
    configuration = client.Configuration()
    configuration.host = "https://apiserver.example:6443"
    configuration.api_key = {"authorization": "t0ken"}
    theirs = client.ApiClient(configuration)
    ours = own_client(theirs)
    assert ours is not theirs
    assert ours.configuration is not configuration
    assert ours.configuration.host == configuration.host
    assert ours.configuration.api_key == {"authorization": "t0ken"}
    assert ours.configuration.retries is False
    assert configuration.retries is None  # the caller's client keeps its own settings
    ours.close()
