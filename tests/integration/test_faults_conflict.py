"""Another writer between syncd's read and its write (HTTP 409), made deterministic.

syncd plans from a resourceVersion and writes with it as a precondition. Here "another client"
changes the Secret after that version was read and before syncd writes, against the real
apiserver, so the write really meets a 409: syncd must re-read and end correct, and must never
overwrite a Secret that stopped being its own in between (the managed-by label removed, or the
Secret replaced). First at the KubeCluster level, then through a whole sync, where the outcome
must be reported (CLI summary, metrics, Event).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from harness import Stack
from harness.kube_objects import annotations_of, labels_of, resource_version, secret_data
from syncd.cli.output import summary
from syncd.config import load_config
from syncd.core.errors import KubeError
from syncd.core.values import Action, DesiredSecret, RegistryCredential, WriteResult
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from syncd.kube import secrets
from syncd.kube.client import load_api_client
from syncd.kube.cluster import KubeCluster
from syncd.kube.events import EventRecorder
from syncd.registry.dockerconfig import render
from syncd.sources.docker_config import DockerConfigSource
from tests.integration.faults import (
    MANAGED_BY,
    Login,
    check_secret,
    docker_config_file,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    record,
    record_exception,
    secret_value,
    write_yaml,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def cluster(stack: Stack) -> KubeCluster:
    """syncd's own client, not the test's."""
    return KubeCluster(load_api_client(kubeconfig=str(stack.kube.kubeconfig), context=None, pool_size=4))


def _desired(login: Login, name: str = "regcred") -> DesiredSecret:
    rendered = render([RegistryCredential("ghcr.io", login.username, login.password)])
    return DesiredSecret(name, rendered.content, rendered.content_hash, credentials=("robot",))


def _patch(core_v1: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> str:
    """Another client's merge patch; returns the new resourceVersion."""
    secret = core_v1.patch_namespaced_secret("regcred", namespace, body)
    return resource_version(secret)


def _content(core_v1: client.CoreV1Api, namespace: str) -> dict[str, Any]:
    data = secret_data(core_v1.read_namespaced_secret("regcred", namespace))[".dockerconfigjson"]
    return dict(json.loads(base64.b64decode(data)))


def _stale(cluster: KubeCluster, core_v1: client.CoreV1Api, namespace: str, first: Login) -> str:
    """syncd's Secret, written; returns the resourceVersion syncd would plan from."""
    assert cluster.create(namespace, _desired(first), adopt=False, now=NOW) == WriteResult(Action.CREATE, True)
    return resource_version(core_v1.read_namespaced_secret("regcred", namespace))


def test_a_stale_update_meets_a_409_rereads_and_ends_correct_keeping_the_other_writers_change(
    cluster: KubeCluster, core_v1: client.CoreV1Api, namespace: str, request: pytest.FixtureRequest
) -> None:
    first, second = Login("robot", secret_value("conflict-1")), Login("robot", secret_value("conflict-2"))
    planned = _stale(cluster, core_v1, namespace, first)
    _patch(core_v1, namespace, {"metadata": {"annotations": {"team.example/owner": "payments"}}})

    # The precondition is real: the same write, without syncd's re-read, is refused.
    with pytest.raises(KubeError) as refused:
        secrets.update(cluster.core, namespace, _desired(second), NOW, planned)
    assert refused.value.status == 409
    assert str(refused.value) == f"updating Secret {namespace}/regcred: HTTP 409 Conflict"
    record_exception(request.node.nodeid, refused.value)

    assert cluster.update(namespace, _desired(second), planned, adopt=False, now=NOW) == WriteResult(
        Action.UPDATE, True
    )
    secret = core_v1.read_namespaced_secret("regcred", namespace)
    check_secret(secret, "regcred", {"ghcr.io": second})
    assert annotations_of(secret)["team.example/owner"] == "payments"  # the other writer's change is kept


def test_a_stale_update_over_a_hand_edit_repairs_it_and_over_the_same_content_writes_nothing(
    cluster: KubeCluster, core_v1: client.CoreV1Api, namespace: str
) -> None:
    first, second = Login("robot", secret_value("conflict-3")), Login("robot", secret_value("conflict-4"))
    planned = _stale(cluster, core_v1, namespace, first)
    hand_edit = base64.b64encode(b'{"auths":{}}').decode()
    _patch(core_v1, namespace, {"data": {".dockerconfigjson": hand_edit}})
    assert cluster.update(namespace, _desired(second), planned, adopt=False, now=NOW).action is Action.UPDATE
    check_secret(core_v1.read_namespaced_secret("regcred", namespace), "regcred", {"ghcr.io": second})

    # Another replica wrote the same content first: a 409, a re-read, and no second write.
    planned = resource_version(core_v1.read_namespaced_secret("regcred", namespace))
    third = Login("robot", secret_value("conflict-5"))
    assert cluster.update(namespace, _desired(third), planned, adopt=False, now=NOW).action is Action.UPDATE
    written = resource_version(core_v1.read_namespaced_secret("regcred", namespace))
    assert cluster.update(namespace, _desired(third), planned, adopt=False, now=NOW) == WriteResult(
        Action.UNCHANGED, False
    )
    assert resource_version(core_v1.read_namespaced_secret("regcred", namespace)) == written


def test_a_secret_that_stopped_being_ours_in_between_is_a_conflict_and_never_overwritten(
    cluster: KubeCluster, core_v1: client.CoreV1Api, make_namespaces: Callable[..., list[str]], prefix: str
) -> None:
    unlabelled, replaced, deleted = make_namespaces(f"{prefix}-unlabelled", f"{prefix}-replaced", f"{prefix}-deleted")
    first, second = Login("robot", secret_value("conflict-6")), Login("robot", secret_value("conflict-7"))
    planned = {ns: _stale(cluster, core_v1, ns, first) for ns in (unlabelled, replaced, deleted)}

    # Someone removed the managed-by label: the Secret is theirs now.
    _patch(core_v1, unlabelled, {"metadata": {"labels": {MANAGED_BY: None}}})
    theirs = core_v1.read_namespaced_secret("regcred", unlabelled)
    assert cluster.update(unlabelled, _desired(second), planned[unlabelled], adopt=False, now=NOW) == WriteResult(
        Action.CONFLICT, False
    )
    after = core_v1.read_namespaced_secret("regcred", unlabelled)
    assert (resource_version(after), after.data) == (resource_version(theirs), theirs.data)
    assert MANAGED_BY not in labels_of(after)

    # Someone deleted it and made their own of the same name.
    core_v1.delete_namespaced_secret("regcred", replaced)
    foreign = client.V1Secret(metadata=client.V1ObjectMeta(name="regcred"), string_data={"token": "theirs"})
    core_v1.create_namespaced_secret(replaced, foreign)
    assert cluster.update(replaced, _desired(second), planned[replaced], adopt=False, now=NOW).action is Action.CONFLICT
    assert core_v1.read_namespaced_secret("regcred", replaced).data == {"token": base64.b64encode(b"theirs").decode()}

    # Someone deleted it: a 404, so it is created again.
    core_v1.delete_namespaced_secret("regcred", deleted)
    assert cluster.update(deleted, _desired(second), planned[deleted], adopt=False, now=NOW).action is Action.CREATE
    check_secret(core_v1.read_namespaced_secret("regcred", deleted), "regcred", {"ghcr.io": second})

    # A prune planned before the takeover is refused by the delete precondition: their Secret stays.
    with pytest.raises(KubeError) as refused:
        cluster.delete(unlabelled, "regcred", planned[unlabelled])
    assert refused.value.status == 409
    assert core_v1.read_namespaced_secret("regcred", unlabelled).data == theirs.data


class _OtherWriter(KubeCluster):
    """The real cluster, with another client acting on a namespace's Secret just before syncd writes it."""

    def __init__(self, api: client.ApiClient, before_write: dict[str, Callable[[], object]]) -> None:
        super().__init__(api)
        self.before_write = before_write

    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        self.before_write.pop(namespace, lambda: None)()
        return super().update(namespace, desired, resource_version, adopt=adopt, now=now)


def test_a_whole_sync_with_writers_in_between_reports_the_conflict_and_ends_correct_elsewhere(
    stack: Stack,
    core_v1: client.CoreV1Api,
    make_namespaces: Callable[..., list[str]],
    prefix: str,
    tmp_path: Path,
    instance: str,
    request: pytest.FixtureRequest,
) -> None:
    edited, taken, calm = make_namespaces(f"{prefix}-edited", f"{prefix}-taken", f"{prefix}-calm")
    first, second = Login("robot", secret_value("conflict-8")), Login("robot", secret_value("conflict-9"))
    docker_config = tmp_path / "config.json"
    path = write_yaml(
        tmp_path / "syncd.yaml",
        {
            "instance": instance,
            "credentials": [{"name": "robot", "docker_config": str(docker_config), "registries": ["ghcr.io"]}],
            "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
        },
    )
    api = load_api_client(kubeconfig=str(stack.kube.kubeconfig), context=None, pool_size=4)
    before_write: dict[str, Callable[[], object]] = {
        edited: lambda: _patch(core_v1, edited, {"metadata": {"labels": {"team.example/owner": "payments"}}}),
        taken: lambda: _patch(core_v1, taken, {"metadata": {"labels": {MANAGED_BY: None}}}),
    }
    registry = CollectorRegistry()
    reconciler = Reconciler(
        config=load_config(path),
        sources={"docker_config": DockerConfigSource()},
        cluster=_OtherWriter(api, before_write),
        metrics=Metrics(registry),
        events=EventRecorder(api),
    )
    docker_config_file(docker_config, {"ghcr.io": first})
    [created] = reconciler.sync_all()
    assert created.result == "success"
    taken_before = core_v1.read_namespaced_secret("regcred", taken)

    docker_config_file(docker_config, {"ghcr.io": second})
    [rotated] = reconciler.sync_all()
    text = summary([rotated])
    record(request.node.nodeid, text, repr(rotated))
    assert before_write == {}  # both other writers acted, between syncd's plan and its write
    assert rotated.result == "partial"
    assert {o.change.namespace: o.change.action for o in rotated.outcomes} == {
        edited: Action.UPDATE,
        taken: Action.CONFLICT,
        calm: Action.UPDATE,
    }
    assert f"  {taken}: conflict: a Secret of that name exists and syncd does not manage it" in text.splitlines()
    for namespace in (edited, calm):
        check_secret(core_v1.read_namespaced_secret("regcred", namespace), "regcred", {"ghcr.io": second})
    assert labels_of(core_v1.read_namespaced_secret("regcred", edited))["team.example/owner"] == "payments"
    taken_after = core_v1.read_namespaced_secret("regcred", taken)
    assert taken_after.data == taken_before.data  # the first login, as its new owner has it
    assert _content(core_v1, taken)["auths"]["ghcr.io"]["password"] == first.password
    assert registry.get_sample_value("syncd_namespaces", {"secret": "regcred", "state": "conflict"}) == 1
    assert registry.get_sample_value("syncd_sync_runs_total", {"secret": "regcred", "result": "partial"}) == 1
    events = core_v1.list_namespaced_event(taken).items
    assert sorted((e.reason, e.type) for e in events) == [("Conflict", "Warning"), ("Synced", "Normal")]
    record(request.node.nodeid, *(e.message for e in events))
