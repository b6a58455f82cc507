"""The chaos soak (soak/, issue 13) for three minutes with a fixed seed, in `make test`.

A shorter, smaller run than `make soak` (60 namespaces instead of 300, faults of 12-16 s; source
outages 24 s): the same servers, two replicas, churn, rotations, reloads and faults, judged by the
same observer. It is started in the background as soon as its test is known to be selected (in
one process at collection, under pytest-xdist by the controller) and runs beside the rest of the
suite (soak_background.py); this test, moved to the end, waits for it. It must record no
violation, and it must have seen enough (faults of several kinds, rotations, churn, writes in the
audit log) that a quiet run cannot pass for a good one.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.soak_background import started

pytestmark = [pytest.mark.integration, pytest.mark.soak]


@pytest.mark.timeout(600)
def test_a_three_minute_soak_records_no_violation(request: pytest.FixtureRequest) -> None:
    soak = started(request.config)
    code = soak.wait(timeout=570)
    print(soak.output()[-5000:])
    [path] = soak.results.glob("*.json")
    results = json.loads(path.read_text())

    assert results["violations"] == [], soak.output()[-5000:]
    assert code == 0, soak.output()[-3000:]
    faults = results["observer"]["faults"]
    assert len({f["kind"] for f in faults}) >= 4, [f["kind"] for f in faults]
    assert all(f["convergence"] is not None for f in faults)
    assert sum(results["rotations"]["done"].values()) >= 3
    assert sum(results["churn"]["done"].values()) >= 60
    assert sum(results["writes_by_replica"].values()) > 0
    assert results["lease_claims"] > 0
    assert len(results["observer"]["polls"]) >= 100
