"""The chaos soak (soak/, issue 13) for three minutes with a fixed seed, in `make test`.

A shorter, smaller run than `make soak` (60 namespaces instead of 300, faults of 12-16 s):
the same servers, two replicas, churn, rotations, reloads and faults, judged by the same
observer. It must record no violation, and it must have seen enough (faults of several kinds,
rotations, churn, writes in the audit log) that a quiet run cannot pass for a good one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SEED = 7
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_a_three_minute_soak_records_no_violation(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "soak", "--duration", "180s", "--seed", str(SEED), "--namespaces", "60"]
    argv += ["--fault-seconds", "12", "16", "--fault-gap", "4", "8", "--out", str(tmp_path / "results")]
    argv += ["--state-dir", str(tmp_path / "state")]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=570, check=False)
    print(run.stdout[-5000:])
    [path] = (tmp_path / "results").glob("*.json")
    results = json.loads(path.read_text())

    assert results["violations"] == [], run.stdout[-5000:]
    assert run.returncode == 0, run.stderr[-3000:]
    faults = results["observer"]["faults"]
    assert len({f["kind"] for f in faults}) >= 4, [f["kind"] for f in faults]
    assert all(f["convergence"] is not None for f in faults)
    assert sum(results["rotations"]["done"].values()) >= 3
    assert sum(results["churn"]["done"].values()) >= 60
    assert sum(results["writes_by_replica"].values()) > 0
    assert results["lease_claims"] > 0
    assert len(results["observer"]["polls"]) >= 100
