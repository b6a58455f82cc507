"""Each of the soak's checks can fail: fed a bad Secret, a write outside the lease, a counter
that went down, a missing alert or a growing process, it says so (soak/, issue 13)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, cast

from soak.alerts import AlertState, judge_alerts
from soak.audit import Claim, Write, judge_writers
from soak.credentials import Ledger
from soak.judge_metrics import Slope, counters_monotonic, last_success_after, leaks, slopes
from soak.observer import Apiserver, Observer
from soak.samples import Sample
from soak.settings import CREDENTIALS, SOAK_LABEL, TIER_LABEL, Settings
from soak.validity import judge

GENERATIONS = {"p-1": 1, "p-2": 2}


def secret(auths: Any, *, hash_of: bytes | None = None, kind: str = "kubernetes.io/dockerconfigjson") -> dict[str, Any]:
    content = json.dumps({"auths": auths}).encode()
    digest = hashlib.sha256(hash_of if hash_of is not None else content).hexdigest()
    return {
        "type": kind,
        "metadata": {"annotations": {"syncd.io/content-hash": f"sha256:{digest}"}},
        "data": {".dockerconfigjson": base64.b64encode(content).decode()},
    }


def login(username: str, password: str) -> dict[str, str]:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"username": username, "password": password, "auth": auth}


def problems(item: dict[str, Any]) -> tuple[str, ...]:
    return judge(item, "ghcr.io", GENERATIONS.get).problems


def test_a_whole_secret_passes_and_names_its_generation() -> None:
    verdict = judge(secret({"ghcr.io": login("robot", "p-2")}), "ghcr.io", GENERATIONS.get)
    assert verdict.problems == ()
    assert verdict.generation == 2


def test_blank_invalid_and_half_written_secrets_fail() -> None:
    assert problems({"type": "kubernetes.io/dockerconfigjson", "data": {}}) == ("blank: no .dockerconfigjson",)
    assert problems(secret({"ghcr.io": login("robot", "")}))[0].startswith("blank")
    assert problems(secret({"quay.io": login("robot", "p-1")}))[0].startswith("invalid: registries")
    assert problems(secret({"ghcr.io": login("robot", "never-held")})) == ("invalid: a password the source never held",)
    assert problems(secret({"ghcr.io": login("robot", "p-1")}, hash_of=b"other"))[0].startswith("half-written")
    assert problems(secret({"ghcr.io": login("robot", "p-1")}, kind="Opaque")) == ("type is not dockerconfigjson",)
    broken = secret({"ghcr.io": login("robot", "p-1")})
    broken["data"][".dockerconfigjson"] = base64.b64encode(b"{not json").decode()
    assert problems(broken) == ("invalid: not a dockerconfigjson document",)


def test_writes_outside_the_lease_are_caught() -> None:
    claims = [Claim(0.0, "a", True), Claim(4.0, "a", True), Claim(20.0, "b", True)]
    writes = [
        Write(5.0, "a", "secrets/x/regcred"),  # inside a's lease: fine
        Write(9.5, "a", "secrets/x/regcred"),  # 4 + 6 = 10: still fine
        Write(10.5, "a", "secrets/y/regcred"),  # a's lease lapsed at 10
        Write(21.0, "b", "secrets/z/regcred"),  # b's own: fine
        Write(2.0, "b", "secrets/w/regcred"),  # b had no lease yet
    ]
    found = judge_writers(claims, writes, lease_seconds=6)
    assert [(v.what, v.reason.split(":")[0]) for v in found] == [
        ("secrets/y/regcred", "wrote 0.50s after its lease lapsed"),
        ("secrets/w/regcred", "wrote without holding the lease"),
    ]
    taken = judge_writers([Claim(0.0, "a", True), Claim(3.0, "b", True)], [Write(4.0, "a", "s")], lease_seconds=6)
    assert [v.reason for v in taken] == ["wrote after another replica claimed the lease"]


def sample(at: float, pid: int, value: float, rss: float = 100.0, success: float = 0.0) -> Sample:
    metrics = {'syncd_sync_runs_total{result="success",secret="s"}': value}
    metrics['syncd_last_success_timestamp_seconds{secret="s"}'] = success
    return Sample(at, "syncd-a", pid, rss * 2**20, 20, 30, metrics)


def test_a_counter_going_down_within_one_process_is_caught_and_a_restart_is_not() -> None:
    assert counters_monotonic([sample(0, 1, 5), sample(1, 1, 6), sample(2, 2, 0), sample(3, 2, 1)]) == []
    [down] = counters_monotonic([sample(0, 1, 5), sample(1, 1, 4)])
    assert (down["from"], down["to"]) == (5, 4)


def test_last_success_must_move_past_the_end_of_a_fault() -> None:
    samples = [sample(100, 1, 1, success=90), sample(102, 1, 1, success=101), sample(104, 1, 1, success=103)]
    assert last_success_after(samples, 101.5, ["s"]) == 2.5
    assert last_success_after(samples[:2], 101.5, ["s"]) is None


def test_a_growing_process_is_a_leak_and_a_flat_one_is_not() -> None:
    flat = [sample(t, 1, 0, rss=100 + (t % 3)) for t in range(0, 900, 5)]
    growing = [sample(t, 2, 0, rss=100 + t / 60) for t in range(0, 900, 5)]  # +60 MB/h
    found = slopes(flat + growing)
    assert [s.pid for s in leaks(found)] == [2]
    by_pid: dict[int, Slope] = {s.pid: s for s in found}
    assert abs(by_pid[1].rss_mb_per_hour) < 5


def test_the_climb_after_first_leading_is_not_a_leak_and_growth_that_keeps_going_is() -> None:
    def at(t: int, pid: int, rss: float, leader: float) -> Sample:
        item = sample(t, pid, 0, rss=rss)
        item.metrics["syncd_leader"] = leader
        return item

    # Stands by at 76 MB for 6 min, then leads and climbs to a 90 MB plateau over 4 min, then stands
    # by for 10 min at that plateau: one fit over the whole life read about +40 MB/h.
    settles = [at(t, 1, 76 + (t % 2), 0.0) for t in range(0, 360, 5)]
    settles += [at(t, 1, 76 + min(14, (t - 360) / 17), 1.0) for t in range(360, 600, 5)]
    settles += [at(t, 1, 90 + (t % 2), 0.0) for t in range(600, 1200, 5)]
    grows = [at(t, 2, 76, 0.0) for t in range(0, 360, 5)]
    grows += [at(t, 2, 90 + (t - 360) / 60, float(t < 600)) for t in range(360, 1200, 5)]  # +60 MB/h
    found = {s.pid: s for s in slopes(settles + grows)}
    assert found[1].since == 810  # first led at 360 s, + warm-up = 420 s; the later half of 420-1195 s
    assert [s.pid for s in leaks(list(found.values()))] == [2]
    assert abs(found[1].rss_mb_per_hour) < 5


def test_an_alert_that_does_not_fire_or_does_not_clear_is_caught() -> None:
    fault = {"kind": "openbao-empty", "started": 100.0, "cleared": 120.0}
    fired = [AlertState(110.0, "SyncdSyncFailing", "firing", "regcred-kv", "warning")]
    assert judge_alerts(fired, [fault], clear_within=30)[0]["expected_missing"] == []
    assert judge_alerts([], [fault], clear_within=30)[0]["expected_missing"] == ["SyncdSyncFailing"]
    stuck = [*fired, AlertState(200.0, "SyncdSyncFailing", "firing", "regcred-kv", "warning")]
    assert judge_alerts(stuck, [fault], clear_within=30)[0]["still_firing_after"] == ["SyncdSyncFailing"]


class FakeApi:
    """The apiserver as the observer reads it: lists of namespaces and Secrets the test sets."""

    def __init__(self) -> None:
        self.namespaces: list[dict[str, Any]] = []
        self.secrets: list[dict[str, Any]] = []

    def items(self, path: str) -> list[dict[str, Any]]:
        return self.namespaces if path.endswith("namespaces") else self.secrets


def managed(namespace: str, spec: str, registry: str, password: str, version: str) -> dict[str, Any]:
    item = secret({registry: login("soak-robot", password)})
    item["metadata"] |= {
        "namespace": namespace,
        "name": spec,
        "resourceVersion": version,
        "labels": {"app.kubernetes.io/managed-by": "syncd", "syncd.io/secret": spec},
    }
    return item


def observed(tmp_path: Path) -> tuple[Observer, FakeApi, Ledger]:
    ledger = Ledger()
    for plan in CREDENTIALS:
        for number in (1, 2, 3):
            ledger.published(plan.name, number, f"{plan.name}-{number}")
    settings = Settings(duration=60, seed=1, out=tmp_path, slo_seconds=0.0, grace_seconds=0.0)
    api = FakeApi()
    return Observer(settings, cast(Apiserver, api), ledger), api, ledger


def checks(observer: Observer) -> list[tuple[str, str]]:
    return [(v.check, v.detail) for v in observer.violations]


def test_the_observer_catches_going_back_and_a_write_to_a_secret_syncd_does_not_own(tmp_path: Path) -> None:
    observer, api, _ = observed(tmp_path)
    observer.unmanaged("ns", "not-ours", "7")
    foreign = {"metadata": {"namespace": "ns", "name": "not-ours", "resourceVersion": "7"}}
    api.secrets = [managed("ns", "regcred-kv", "ghcr.io", "kv-robot-3", "1"), foreign]
    for item in api.secrets:  # what the watch sees
        observer.saw_secret(item)
    observer.poll()
    assert [v for v in checks(observer) if v[0] != "convergence"] == []
    observer.saw_secret(managed("ns", "regcred-kv", "ghcr.io", "kv-robot-2", "2"))  # back by one generation
    observer.saw_secret({"metadata": {**foreign["metadata"], "resourceVersion": "8"}})
    assert checks(observer) == [
        ("no-going-back", "went back from generation 3 to 2"),
        ("unmanaged-untouched", "a Secret syncd does not own was written"),
    ]
    observer.saw_secret(managed("ns", "regcred-kv", "ghcr.io", "kv-robot-1", "3"))  # two behind the current
    assert ("no-going-back", "holds generation 1, current is 3") in checks(observer)
    api.secrets = []
    observer.poll()
    assert ("unmanaged-untouched", "a Secret syncd does not own was deleted") in checks(observer)


def test_a_foreign_secret_gone_with_its_deleted_namespace_is_no_violation(tmp_path: Path) -> None:
    """kube-controller-manager empties a deleted namespace: the churn says so before it deletes."""
    observer, api, _ = observed(tmp_path)
    observer.unmanaged("gone", "not-ours", "7")
    observer.unmanaged("kept", "not-ours", "9")
    api.secrets = []
    observer.deleted("gone")
    observer.poll()
    assert [v for v in checks(observer) if v[0] == "unmanaged-untouched"] == [
        ("unmanaged-untouched", "a Secret syncd does not own was deleted")
    ]
    assert [v.where for v in observer.violations if v.check == "unmanaged-untouched"] == ["kept/not-ours"]


def test_the_observer_catches_a_namespace_left_without_the_current_credential(tmp_path: Path) -> None:
    observer, api, _ = observed(tmp_path)
    labels = {SOAK_LABEL: "yes", TIER_LABEL: "a"}
    api.namespaces = [{"metadata": {"name": "ns", "labels": labels}, "status": {"phase": "Active"}}]
    observer.poll()  # wrong from now on: nothing was written
    observer.poll()
    assert {v.check for v in observer.violations} == {"convergence"}
    assert observer.converged("kv-robot") is False


def test_a_rotation_after_the_last_poll_is_not_converged_until_a_poll_sees_it(tmp_path: Path) -> None:
    """A fault that checked a stale "converged" rotated on top of a generation syncd never had (the
    helper-hang finding of the first make test with xdist: generation 1 written while 3 was current)."""
    observer, api, ledger = observed(tmp_path)
    labels = {SOAK_LABEL: "yes", TIER_LABEL: "a"}
    api.namespaces = [{"metadata": {"name": "ns", "labels": labels}, "status": {"phase": "Active"}}]
    api.secrets = [
        managed("ns", "regcred-kv", "ghcr.io", "kv-robot-3", "1"),
        managed("ns", "regcred-lease", "quay.io", "leased-robot-3", "2"),
        managed("ns", "regcred-helper", "registry.soak.example", "pass-robot-3", "3"),
    ]
    observer.poll()
    assert observer.all_converged()
    ledger.published("pass-robot", 4, "pass-robot-4")
    assert not observer.converged("pass-robot")
    assert observer.converged("kv-robot")
    observer.poll()  # the namespace still holds generation 3
    assert not observer.converged("pass-robot")
    api.secrets[2] = managed("ns", "regcred-helper", "registry.soak.example", "pass-robot-4", "4")
    observer.poll()
    assert observer.all_converged()


def test_a_version_is_judged_against_the_generation_current_when_it_was_stored(tmp_path: Path) -> None:
    """A watch resuming after an apiserver restart replays old versions: not a step back."""
    observer, _, _ = observed(tmp_path)
    replayed = managed("ns", "regcred-kv", "ghcr.io", "kv-robot-1", "5")
    replayed["metadata"]["managedFields"] = [{"manager": "syncd", "time": "2020-01-01T00:00:00Z"}]
    observer.saw_secret(replayed)
    assert checks(observer) == []
    stored_now = managed("other", "regcred-kv", "ghcr.io", "kv-robot-1", "6")
    stored_now["metadata"]["managedFields"] = [{"manager": "syncd", "time": "2099-01-01T00:00:00Z"}]
    observer.saw_secret(stored_now)
    assert checks(observer) == [("no-going-back", "holds generation 1, current is 3")]
