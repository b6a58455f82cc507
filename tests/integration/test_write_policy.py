"""A compromised syncd, tried as an attacker on the real apiserver with its controllers running.

The attacker holds a token of syncd's ServiceAccount bound by exactly what `syncd rbac` prints.
With the RBAC alone, the escalation of issue 27 works: create a service-account-token Secret of a
granted name in kube-system for a controller's ServiceAccount, let the token controller fill it
in, read it back. With the ValidatingAdmissionPolicy `syncd rbac` prints beside the RBAC, that and
every other path below is refused by the apiserver, while `syncd once` and `syncd run` still do
all their work as that ServiceAccount.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.accounts import service_account_token, token_kubeconfig
from harness.kube_objects import default_service_account, pull_secret_names
from harness.kubectl import kubectl
from harness.syncd_process import SyncdProcess, has_secret, new_namespace
from harness.wait import wait_until
from syncd.cli.commands import main
from syncd.config import Config
from syncd.manifests import admission_policy as policy
from syncd.manifests import rbac

pytestmark = pytest.mark.integration

# The harness's kube-controller-manager runs every controller with its own credentials: the token
# controller fills in service-account-token Secrets, the aggregation controller's ServiceAccount
# may escalate ClusterRoles, the policy status controller type-checks the policies' CEL.
TARGET_ACCOUNT = "clusterrole-aggregation-controller"
MANAGED = {"app.kubernetes.io/managed-by": "syncd"}


@dataclass(frozen=True)
class Syncd:
    """One installation: its ServiceAccount's namespace, its config, an API client as it."""

    prefix: str
    namespace: str
    config: dict[str, Any]
    kubeconfig: Path
    api: client.CoreV1Api

    @property
    def instance(self) -> str:
        return str(self.config["instance"])

    @property
    def name(self) -> str:
        """The Secret name its first spec writes."""
        return str(self.config["secrets"][0]["name"])

    def labels(self, **extra: str) -> dict[str, str]:
        return {**MANAGED, "syncd.io/instance": self.instance, **extra}


def _settings(prefix: str, namespace: str, tmp: Path) -> dict[str, Any]:
    auth = base64.b64encode(b"robot:policy-test-password").decode()
    docker_config = tmp / "docker-config.json"
    docker_config.write_text(json.dumps({"auths": {"registry.example": {"auth": auth}}}))
    spec = {
        "credentials": ["files"],
        "namespaces": {"patterns": [f"{prefix}-*"], "exclude": [f"{prefix}-skip*"]},
        "service_accounts": ["default"],
    }
    return {
        "instance": f"atk-{prefix}",
        "credentials": [{"name": "files", "docker_config": str(docker_config), "registries": ["registry.example"]}],
        "secrets": [
            {**spec, "name": f"regcred-{prefix}"},
            {**spec, "name": f"adopt-{prefix}", "on_conflict": "adopt"},
        ],
        "retired_secrets": [f"old-{prefix}"],
        "schedule": {"interval": "1h"},
        # Off, so `syncd rbac` prints no Lease Role; on, it would print it in this namespace.
        "leader_election": {"namespace": namespace},
    }


def _install(
    stack: Stack, tmp: Path, *, with_policy: bool, edit: Callable[[dict[str, Any]], None] = lambda _: None
) -> Syncd:
    """An installation as `syncd rbac` prints it for its config (`edit` changes that config first)."""
    prefix = f"p{uuid.uuid4().hex[:6]}"
    namespace = f"syncd-{prefix}"
    admin = _admin(stack)
    new_namespace(admin, namespace, {})
    admin.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="syncd"))
    )
    settings = _settings(prefix, namespace, tmp)
    edit(settings)
    _apply_rbac(stack, settings, namespace, with_policy=with_policy)
    kubeconfig = token_kubeconfig(
        stack.kube, tmp / "kubeconfig", service_account_token(admin, namespace, "syncd", audiences=[])
    )
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    return Syncd(prefix, namespace, settings, kubeconfig, api)


def _apply_rbac(stack: Stack, settings: dict[str, Any], namespace: str, *, with_policy: bool = True) -> None:
    docs = rbac.manifests(Config.model_validate(settings), namespace=namespace, service_account="syncd")
    if not with_policy:
        docs = [d for d in docs if d["apiVersion"].startswith("rbac.")]
    applied = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=yaml.safe_dump_all(docs))
    assert applied.returncode == 0, applied.stderr


@pytest.fixture(scope="module")
def unguarded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Syncd:
    return _install(stack, tmp_path_factory.mktemp("unguarded"), with_policy=False)


@pytest.fixture(scope="module")
def guarded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Syncd:
    syncd = _install(stack, tmp_path_factory.mktemp("guarded"), with_policy=True)
    _wait_until_enforced(stack, syncd)
    return syncd


def test_the_policy_type_checks_without_warnings(stack: Stack, guarded: Syncd) -> None:
    """A misspelt field compiles in CEL and is only a type-check warning: the status controller says."""
    policies = client.AdmissionregistrationV1Api(config.new_client_from_config(config_file=str(stack.kube.kubeconfig)))
    for name in policy.policy_names(rbac.role_name("syncd", guarded.instance)):

        def checked(name: str = name) -> bool:
            found = policies.read_validating_admission_policy(name)
            generation = found.metadata.generation if found.metadata else None
            return found.status is not None and found.status.observed_generation == generation

        wait_until(checked, 30, f"the policy status controller to type-check {name}")
        status = policies.read_validating_admission_policy(name).status
        warnings = status.type_checking.expression_warnings if status and status.type_checking else None
        assert not warnings, [w.warning for w in warnings or []]


def _admin(stack: Stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(stack.kube.kubeconfig)))


def _wait_until_enforced(stack: Stack, syncd: Syncd) -> None:
    """The apiserver applies a new policy once its informer has it: probe with a refused create."""
    admin, probe_namespace = _admin(stack), f"{syncd.prefix}-probe"
    new_namespace(admin, probe_namespace, {})
    opaque = client.V1Secret(metadata=client.V1ObjectMeta(name=syncd.name, labels=syncd.labels()), type="Opaque")

    def refused() -> bool:
        try:
            syncd.api.create_namespaced_secret(probe_namespace, opaque)
        except ApiException as exc:
            return exc.status == 403 and "ValidatingAdmissionPolicy" in str(exc.body)
        admin.delete_namespaced_secret(syncd.name, probe_namespace)
        return False

    wait_until(refused, 30, "the ValidatingAdmissionPolicy to be enforced")

    # The ServiceAccounts' policy and binding are objects of their own, cached apart: probe it too
    # (a random test order once ran a ServiceAccount attempt before the apiserver had it).
    served = _account(syncd, admin)

    def account_refused() -> bool:
        try:
            syncd.api.patch_namespaced_service_account("default", served, {"metadata": {"labels": {"probe": "x"}}})
        except ApiException as exc:
            return exc.status == 403 and "ValidatingAdmissionPolicy" in str(exc.body)
        return False

    wait_until(account_refused, 30, "the ServiceAccounts' ValidatingAdmissionPolicy to be enforced")


def _secret(name: str, secret_type: str, labels: dict[str, str], **annotations: str) -> client.V1Secret:
    meta = client.V1ObjectMeta(name=name, labels=labels, annotations=annotations or None)
    data = {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}
    return client.V1Secret(
        metadata=meta, type=secret_type, data=data if secret_type.endswith("dockerconfigjson") else None
    )


def _token_secret(name: str) -> client.V1Secret:
    return _secret(
        name, "kubernetes.io/service-account-token", {}, **{"kubernetes.io/service-account.name": TARGET_ACCOUNT}
    )


def test_with_the_rbac_alone_syncd_mints_a_token_that_may_escalate_cluster_roles(
    stack: Stack, unguarded: Syncd
) -> None:
    """Why the policy exists: the escalation of issue 27, reproduced (so the refusals below mean something)."""
    admin = _admin(stack)
    unguarded.api.create_namespaced_secret("kube-system", _token_secret(unguarded.name))
    try:

        def filled() -> bool:
            data = unguarded.api.read_namespaced_secret(unguarded.name, "kube-system").data or {}
            return "token" in data

        wait_until(filled, 30, "the token controller to fill in the Secret syncd created")
        data = unguarded.api.read_namespaced_secret(unguarded.name, "kube-system").data or {}
        stolen = base64.b64decode(data["token"])
        as_controller = token_kubeconfig(stack.kube, Path(unguarded.kubeconfig).with_name("stolen"), stolen.decode())
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    group="rbac.authorization.k8s.io", resource="clusterroles", verb="escalate"
                )
            )
        )
        api = client.AuthorizationV1Api(config.new_client_from_config(config_file=str(as_controller)))
        status = api.create_self_subject_access_review(review).status
        assert status is not None
        assert status.allowed, "the stolen token may not escalate ClusterRoles: the escalation path changed"
    finally:
        admin.delete_namespaced_secret(unguarded.name, "kube-system")


Attempt = Callable[[Syncd, client.CoreV1Api], object]


def _served(syncd: Syncd, admin: client.CoreV1Api, suffix: str = "") -> str:
    namespace = f"{syncd.prefix}-{suffix or uuid.uuid4().hex[:6]}"
    new_namespace(admin, namespace, {})
    return namespace


def _foreign(syncd: Syncd, admin: client.CoreV1Api, labels: dict[str, str]) -> str:
    """A served namespace holding another party's dockerconfigjson Secret of syncd's name."""
    namespace = _served(syncd, admin)
    admin.create_namespaced_secret(namespace, _secret(syncd.name, "kubernetes.io/dockerconfigjson", labels))
    return namespace


def _account(syncd: Syncd, admin: client.CoreV1Api) -> str:
    """A served namespace whose `default` ServiceAccount lists another team's pull Secret."""
    namespace = _served(syncd, admin)
    default_service_account(admin, namespace, ["theirs"])
    return namespace


def _patch_account(syncd: Syncd, admin: client.CoreV1Api, body: dict[str, Any]) -> object:
    return syncd.api.patch_namespaced_service_account("default", _account(syncd, admin), body)


ATTEMPTS: dict[str, Attempt] = {
    "service-account-token Secret in kube-system": lambda s, _: s.api.create_namespaced_secret(
        "kube-system", _token_secret(s.name)
    ),
    "service-account-token Secret in a served namespace": lambda s, a: s.api.create_namespaced_secret(
        _served(s, a), _token_secret(s.name)
    ),
    "bootstrap token in kube-system": lambda s, _: s.api.create_namespaced_secret(
        "kube-system", _secret("bootstrap-token-abcdef", "bootstrap.kubernetes.io/token", {})
    ),
    "Opaque Secret with syncd's labels and name": lambda s, a: s.api.create_namespaced_secret(
        _served(s, a), _secret(s.name, "Opaque", s.labels())
    ),
    "pull Secret in kube-system": lambda s, _: s.api.create_namespaced_secret(
        "kube-system", _secret(s.name, "kubernetes.io/dockerconfigjson", s.labels())
    ),
    "pull Secret in an excluded namespace": lambda s, a: s.api.create_namespaced_secret(
        _served(s, a, "skipped"), _secret(s.name, "kubernetes.io/dockerconfigjson", s.labels())
    ),
    "pull Secret without the instance label": lambda s, a: s.api.create_namespaced_secret(
        _served(s, a), _secret(s.name, "kubernetes.io/dockerconfigjson", MANAGED)
    ),
    "pull Secret of a name the config does not have": lambda s, a: s.api.create_namespaced_secret(
        _served(s, a), _secret("not-granted", "kubernetes.io/dockerconfigjson", s.labels())
    ),
    "update of a foreign same-named Secret": lambda s, a: s.api.patch_namespaced_secret(
        s.name, _foreign(s, a, {"team": "theirs"}), {"metadata": {"labels": s.labels()}}
    ),
    "delete of a foreign same-named Secret": lambda s, a: s.api.delete_namespaced_secret(
        s.name, _foreign(s, a, {"team": "theirs"})
    ),
    "update of another instance's Secret": lambda s, a: s.api.patch_namespaced_secret(
        s.name, _foreign(s, a, {**MANAGED, "syncd.io/instance": "other"}), {"metadata": {"labels": s.labels()}}
    ),
    "delete of another instance's Secret": lambda s, a: s.api.delete_namespaced_secret(
        s.name, _foreign(s, a, {**MANAGED, "syncd.io/instance": "other"})
    ),
    "ServiceAccount automountServiceAccountToken": lambda s, a: _patch_account(
        s, a, {"automountServiceAccountToken": True}
    ),
    "ServiceAccount labels": lambda s, a: _patch_account(s, a, {"metadata": {"labels": {"x": "y"}}}),
    "ServiceAccount secrets": lambda s, a: _patch_account(s, a, {"secrets": [{"name": s.name}]}),
    "ServiceAccount: drop another team's pull Secret": lambda s, a: _patch_account(s, a, {"imagePullSecrets": []}),
    "ServiceAccount: add a pull Secret syncd does not write": lambda s, a: _patch_account(
        s, a, {"imagePullSecrets": [{"name": "theirs"}, {"name": "not-granted"}]}
    ),
}


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_a_compromised_syncd_is_refused(stack: Stack, guarded: Syncd, attempt: str) -> None:
    with pytest.raises(ApiException) as refused:
        ATTEMPTS[attempt](guarded, _admin(stack))
    assert refused.value.status == 403, refused.value.body
    # Every path here is one the RBAC grants: the policy, not RBAC, must be what refuses it.
    assert "ValidatingAdmissionPolicy" in str(refused.value.body), refused.value.body


def test_what_syncd_writes_is_allowed(stack: Stack, guarded: Syncd) -> None:
    """The positive controls: a policy that refused everything would pass the test above."""
    admin = _admin(stack)
    namespace = _account(guarded, admin)
    secret = _secret(guarded.name, "kubernetes.io/dockerconfigjson", guarded.labels())
    guarded.api.create_namespaced_secret(namespace, secret)
    guarded.api.patch_namespaced_secret(guarded.name, namespace, {"metadata": {"annotations": {"a": "b"}}})
    body = {"imagePullSecrets": [{"name": "theirs"}, {"name": guarded.name}]}
    guarded.api.patch_namespaced_service_account("default", namespace, body)
    assert pull_secret_names(admin.read_namespaced_service_account("default", namespace)) == ["theirs", guarded.name]
    guarded.api.delete_namespaced_secret(guarded.name, namespace)


def _selecting(syncd: Syncd, namespaces: dict[str, Any]) -> dict[str, Any]:
    """The installation's config with another selection (the same exclude) in every spec."""
    settings: dict[str, Any] = json.loads(json.dumps(syncd.config))
    for spec in settings["secrets"]:
        spec["namespaces"] = {**namespaces, "exclude": spec["namespaces"]["exclude"]}
    return settings


def _once(syncd: Syncd, settings: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / f"syncd-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(settings))
    code = main(["once", "--config", str(path), "--kubeconfig", str(syncd.kubeconfig)])
    out = capsys.readouterr()
    assert "HTTP 403" not in out.out + out.err
    assert "ValidatingAdmissionPolicy" not in out.out + out.err
    assert code == 0, out.out + out.err
    return out.out


def test_syncd_once_does_all_its_work_under_the_policy(
    stack: Stack, guarded: Syncd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Create, link, adopt, update, take over, prune and retire: none of it refused."""
    admin = _admin(stack)
    spare = _account(guarded, admin)
    dropped = _account(guarded, admin)
    adopt = guarded.config["secrets"][1]["name"]
    admin.create_namespaced_secret(spare, _secret(adopt, "kubernetes.io/dockerconfigjson", {"team": "was-theirs"}))
    retired = f"old-{guarded.prefix}"
    old = _secret(retired, "kubernetes.io/dockerconfigjson", guarded.labels(**{"syncd.io/secret": retired}))
    assert old.metadata is not None
    old.metadata.annotations = {"syncd.io/prune": "true"}
    admin.create_namespaced_secret(spare, old)
    # Only these two: other tests leave conflicts in namespaces the spec's pattern matches.
    both = _selecting(guarded, {"names": [spare, dropped]})
    first = _once(guarded, both, tmp_path, capsys)
    assert "adopted" in first, first
    for namespace in (spare, dropped):
        assert has_secret(admin, namespace, guarded.name)
        assert has_secret(admin, namespace, adopt)
        names = pull_secret_names(admin.read_namespaced_service_account("default", namespace))
        assert names == ["theirs", guarded.name, adopt], names
    assert not has_secret(admin, spare, retired), "the retired spec's Secret was not pruned"
    # A namespace leaves the selection: its Secrets are pruned and unlinked.
    _once(guarded, _selecting(guarded, {"names": [spare]}), tmp_path, capsys)
    assert not has_secret(admin, dropped, guarded.name)
    assert pull_secret_names(admin.read_namespaced_service_account("default", dropped)) == ["theirs"]


def test_syncd_run_serves_a_new_namespace_under_the_policy(stack: Stack, guarded: Syncd, tmp_path: Path) -> None:
    admin = _admin(stack)
    selector = f"run={guarded.prefix}"
    daemon = SyncdProcess(_selecting(guarded, {"selector": selector}), tmp_path / "daemon", guarded.kubeconfig, {})
    daemon.start()
    try:
        daemon.wait_ready()
        later = _account(guarded, admin)
        admin.patch_namespace(later, {"metadata": {"labels": {"run": guarded.prefix}}})
        wait_until(lambda: has_secret(admin, later, guarded.name), 30, "the watch-triggered sync")
        wait_until(
            lambda: guarded.name in pull_secret_names(admin.read_namespaced_service_account("default", later)),
            30,
            "the ServiceAccount link",
        )
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    log = daemon.log()
    assert "HTTP 403" not in log, log[-3000:]
    assert "ValidatingAdmissionPolicy" not in log, log[-3000:]


def test_a_config_ahead_of_its_policy_fails_alone_and_names_the_policy(
    stack: Stack, guarded: Syncd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config edited without re-applying `syncd rbac` (here: an exclude dropped) is refused by
    the policy; syncd says which policy and how to fix it, and the rest of the sync goes on."""
    admin = _admin(stack)
    allowed, excluded = _served(guarded, admin), _served(guarded, admin, f"skip-{uuid.uuid4().hex[:4]}")
    ahead = _selecting(guarded, {"names": [allowed, excluded]})
    for spec in ahead["secrets"]:
        spec["namespaces"]["exclude"] = []
    path = tmp_path / "ahead.yaml"
    path.write_text(yaml.safe_dump(ahead))
    code = main(["once", "--config", str(path), "--kubeconfig", str(guarded.kubeconfig)])
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    secrets_policy, _ = policy.policy_names(rbac.role_name("syncd", guarded.instance))
    assert f"refused by ValidatingAdmissionPolicy '{secrets_policy}'" in out.out + out.err
    assert "syncd rbac --config" in out.out + out.err
    assert has_secret(admin, allowed, guarded.name)
    assert not has_secret(admin, excluded, guarded.name)


def test_a_retired_spec_takes_back_its_service_account_references(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec linked to `builder` (the other spec to none) moves to retired_secrets with its
    service_accounts: the regenerated RBAC still grants `builder`, and syncd removes the reference
    it added there along with the Secret (a plain name would have left it: the RBAC and the planner
    would not know the ServiceAccount)."""

    def builder_only(settings: dict[str, Any]) -> None:
        settings["secrets"][0]["service_accounts"] = ["builder"]
        settings["secrets"][1]["service_accounts"] = []

    syncd = _install(stack, tmp_path, with_policy=True, edit=builder_only)
    admin = _admin(stack)
    namespace = _served(syncd, admin)
    builder = client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="builder"), image_pull_secrets=[client.V1LocalObjectReference(name="theirs")]
    )
    admin.create_namespaced_service_account(namespace, builder)
    _once(syncd, _selecting(syncd, {"names": [namespace]}), tmp_path, capsys)
    assert pull_secret_names(admin.read_namespaced_service_account("builder", namespace)) == ["theirs", syncd.name]

    retiring = _selecting(syncd, {"names": [namespace]})
    retiring["secrets"] = retiring["secrets"][1:]
    retiring["retired_secrets"] = [{"name": syncd.name, "service_accounts": ["builder"]}]
    _apply_rbac(stack, retiring, syncd.namespace)
    out = _once(syncd, retiring, tmp_path, capsys)
    assert "(removed specs): success (1 pruned, 1 unlinked)" in out, out
    assert not has_secret(admin, namespace, syncd.name)
    after = admin.read_namespaced_service_account("builder", namespace)
    assert pull_secret_names(after) == ["theirs"]
    assert "syncd.io/added-pull-secrets" not in (after.metadata.annotations or {} if after.metadata else {})
