"""An apiserver that throttles (HTTP 429 + Retry-After): syncd must wait and retry, and finish.

A cluster of this module's own runs with `--max-requests-inflight=1 --max-mutating-requests-inflight=1`
and `--enable-priority-and-fairness=false`. With API Priority and Fairness on (the default), those
limits only size APF's queues: requests wait in line and no 429 is ever sent (measured here: a
200-namespace rollout took 14 s instead of 3 s, zero 429s). With APF off, the max-in-flight filter
answers 429 with `Retry-After: 1` at once. syncd logs in as a ServiceAccount: `system:masters`
(the admin certificate) is exempt from both.

This found a bug: every throttled writer slept exactly the server's Retry-After, so they came back
together and were throttled together again, and after 5 tries some writes failed (1 in 200, in
2 runs of 7). syncd now adds up to 100% jitter to the wait and retries up to 10 times, as client-go.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from syncd.kube.client import MAX_RETRY_AFTER_SECONDS, retry_after
from tests.integration.faults import (
    Login,
    PrivateKube,
    add_unmanaged,
    check_secrets,
    docker_config_file,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    make_namespaces,
    once_process,
    record,
    record_events,
    secret_value,
    snapshot,
    write_yaml,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]
THROTTLED = ["--max-requests-inflight=1", "--max-mutating-requests-inflight=1", "--enable-priority-and-fairness=false"]
NAMESPACES = 200


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKube]:
    with PrivateKube(tmp_path_factory.mktemp("throttled-kube"), extra_args=THROTTLED) as kube:
        yield kube


def rejected(cluster: PrivateKube) -> float:
    """429s the apiserver answered, from its own /metrics."""
    total = 0.0
    for line in cluster.apiserver_metrics().splitlines():
        if line.startswith("apiserver_request_total{") and 'code="429"' in line:
            total += float(line.rpartition(" ")[2])
    return total


def test_a_throttling_apiserver_slows_the_rollout_down_but_every_secret_is_written(
    throttled: PrivateKube, tmp_path: Path, instance: str, request: pytest.FixtureRequest
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}"
    names = make_namespaces(throttled.core, [f"{prefix}-{i:03d}" for i in range(NAMESPACES)])
    add_unmanaged(throttled.core, names[::20])
    unmanaged = snapshot(throttled.core, "not-ours", names[::20])
    logins = {"ghcr.io": Login("robot", secret_value("throttled"))}
    config = write_yaml(
        tmp_path / "syncd.yaml",
        {
            "instance": instance,
            "credentials": [
                {
                    "name": "files",
                    "docker_config": str(docker_config_file(tmp_path / "config.json", logins)),
                    "registries": ["ghcr.io"],
                }
            ],
            "secrets": [{"name": "regcred", "credentials": ["files"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
        },
    )
    kubeconfig = throttled.service_account_kubeconfig()
    before = rejected(throttled)

    run = once_process(config, kubeconfig, tmp_path / "once")
    code = run.wait(timeout=180)
    record(request.node.nodeid, run.out, run.err)
    throttled_requests = rejected(throttled) - before
    print(f"429s answered during the rollout: {throttled_requests:.0f}")

    assert throttled_requests > 0  # the fault really happened
    assert code == 0, run.out + run.err[-3000:]
    assert run.out.strip() == f"regcred: success ({NAMESPACES} created)"
    check_secrets(throttled.core, "regcred", names, logins)
    assert snapshot(throttled.core, "not-ours", names[::20]) == unmanaged
    record_events(request.node.nodeid, throttled.core)


def test_throttled_waits_are_spread_and_capped() -> None:
    answer = ApiException(status=429, reason="Too Many Requests")
    answer.headers = {"Retry-After": "1"}
    assert retry_after(answer, 0, jitter=lambda: 0.0) == 1.0
    assert retry_after(answer, 0, jitter=lambda: 0.999) == pytest.approx(1.999)
    assert len({retry_after(answer, 0) for _ in range(20)}) > 1  # writers throttled together come back apart
    answer.headers = {"Retry-After": "120"}
    assert retry_after(answer, 0) == MAX_RETRY_AFTER_SECONDS
    answer.headers = {}
    assert retry_after(answer, 3, jitter=lambda: 0.0) == pytest.approx(1.6)  # no Retry-After: 0.2 s doubled
