"""VaultSource against the real OpenBao of the harness (harness/), logging in the ways syncd users do.

Each test makes its own mounts, policies and auth mounts (uuid-named): the server is shared
by the whole session. The audit log counts requests at the server, which is how these tests
prove one login is reused, a revoked token is replaced, and a short-lived token is renewed.

Every log record (DEBUG and up) and every error text of each test is collected, and checked
after the test for every secret value this module has written (`_no_secret_in_output`);
`test_no_secret_value_in_logs_or_errors` shows the collection sees syncd's DEBUG logs. The test
that stops OpenBao stops one of its own: a dev server comes back empty.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.process import Server, free_port
from harness.vault import Vault, find_bao
from harness.wait import wait_until
from syncd.config import VaultConfig, VaultCredential
from syncd.core.clock import utcnow
from syncd.core.errors import CredentialNotFound, InvalidCredential, SourceDenied, SourceError, SourceUnavailable
from syncd.sources.vault import VaultSession, VaultSource

pytestmark = pytest.mark.integration

SECRETS: dict[str, str] = {}  # every secret value, token, secret_id and JWT this module handles -> a label
OUTPUT: list[str] = []  # the error texts of the running test (its log records join them after it)


def _secret(label: str) -> str:
    return _register(f"{label}-{uuid.uuid4().hex}", label)


def _register(value: str, label: str) -> str:
    SECRETS[value] = label
    return value


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _leaked(text: str) -> list[str]:
    """The labels (never the values) of the registered secrets that appear in `text`."""
    return sorted(label for value, label in SECRETS.items() if value in text)


@pytest.fixture(autouse=True)
def _no_secret_in_output(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """After each test: no secret value in what it logged (DEBUG and up) or the errors it raised."""
    # The test's own kubernetes client logs response bodies (TokenRequest JWTs) at DEBUG; that is
    # not syncd's output, and syncd keeps that logger above DEBUG itself. set_level also sets the
    # capture handler's level, so the root's DEBUG comes last.
    caplog.set_level(logging.INFO, logger="kubernetes")
    caplog.set_level(logging.DEBUG)
    OUTPUT.clear()
    yield
    # In teardown, caplog.text holds only teardown's records: take those of setup and call.
    formatter = logging.Formatter()
    OUTPUT.extend(formatter.format(r) for phase in ("setup", "call") for r in caplog.get_records(phase))
    leaked = _leaked("\n".join(OUTPUT))
    assert not leaked, f"secret value(s) labelled {leaked} appear in logs or errors"


def _expect(error: type[SourceError], source: VaultSource, credential: VaultCredential) -> SourceError:
    with pytest.raises(error) as caught:
        source.fetch(credential)
    OUTPUT.extend([str(caught.value), repr(caught.value), "".join(traceback.format_exception(caught.value))])
    assert caught.value.credential == credential.name
    return caught.value


def _audited(stack: Stack, path: str, policy: str | None = None) -> int:
    """Requests to `path` in the audit log; with `policy`, only those made by a token holding it."""
    count = 0
    for line in stack.vault.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") != "request" or entry.get("request", {}).get("path") != path:
            continue
        if policy is None or policy in (entry.get("auth") or {}).get("policies", []):
            count += 1
    return count


@dataclass
class Stored:
    """A KV v2 mount holding one registry login, and a policy that may read it."""

    mount: str
    path: str
    password: str
    policy: str

    def credential(self, name: str = "ghcr", **vault: Any) -> VaultCredential:
        spec = {"kv": 2, "mount": self.mount, "path": self.path, **vault}
        return VaultCredential.model_validate({"name": name, "registry": "ghcr.io", "vault": spec})


def _policy(root: hvac.Client, *mounts: str) -> str:
    name = _unique("syncd")
    root.sys.create_or_update_policy(name, "\n".join(f'path "{m}/*" {{ capabilities = ["read"] }}' for m in mounts))
    return name


def _mount(root: hvac.Client, prefix: str, version: str) -> str:
    mount = _unique(prefix)
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": version})
    if version == "2":
        _wait_for_kv2(root, mount)
    return mount


def _wait_for_kv2(root: hvac.Client, mount: str) -> None:
    """A new KV v2 mount answers "Upgrading from non-versioned to versioned data" for a moment, longer
    on a loaded machine (it failed this fixture once while the 3-minute soak ran beside the suite)."""

    def serving() -> bool:
        try:
            root.secrets.kv.v2.read_secret_version("probe", mount_point=mount, raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            return True  # serving reads: nothing there yet
        except hvac.exceptions.VaultError as exc:
            if "Upgrading" not in str(exc):
                raise
            return False
        return True

    wait_until(serving, 15, f"the KV v2 mount {mount} to serve reads")


@pytest.fixture
def stored(vault_client: hvac.Client) -> Stored:
    mount = _mount(vault_client, "kv2", "2")
    password = _secret("registry-password")
    kv = vault_client.secrets.kv.v2
    kv.create_or_update_secret("registry/ghcr", secret={"username": "robot", "password": password}, mount_point=mount)
    return Stored(mount, "registry/ghcr", password, _policy(vault_client, mount))


def _config(vault: Vault, **auth: Any) -> VaultConfig:
    auth = {k: str(v) if isinstance(v, Path) else v for k, v in auth.items()}
    return VaultConfig.model_validate({"address": vault.address, "allow_http": True, "timeout": "5s", "auth": auth})


def _approle(vault: Vault, root: hvac.Client, tmp_path: Path, policy: str, **role: Any) -> tuple[VaultConfig, str]:
    """An AppRole mount and role with `policy`; the config that logs in with it, and the mount."""
    mount = _unique("approle")
    root.sys.enable_auth_method("approle", path=mount)
    root.auth.approle.create_or_update_approle("syncd", token_policies=[policy], mount_point=mount, **role)
    role_id = root.auth.approle.read_role_id("syncd", mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("syncd", mount_point=mount)["data"]["secret_id"]
    _register(secret_id, "secret_id")
    secret_id_file = tmp_path / f"{mount}-secret-id"
    secret_id_file.write_text(secret_id + "\n")
    config = _config(vault, method="approle", mount=mount, role_id=role_id, secret_id_file=secret_id_file)
    return config, mount


@pytest.fixture
def approle_source(stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored) -> VaultSource:
    config, _ = _approle(stack.vault, vault_client, tmp_path, stored.policy)
    return VaultSource(VaultSession(config))


# --- reading ------------------------------------------------------------------------------------


def test_kv2_reads_the_latest_version(approle_source: VaultSource, vault_client: hvac.Client, stored: Stored) -> None:
    newer = _secret("registry-password-v2")
    vault_client.secrets.kv.v2.create_or_update_secret(
        stored.path,
        secret={"username": "robot", "password": newer, "email": "ci@example.com"},
        mount_point=stored.mount,
    )
    fetched = approle_source.fetch(stored.credential())
    [entry] = fetched.entries
    assert (fetched.name, fetched.source, fetched.expires_at) == ("ghcr", "vault", None)
    assert (entry.registry, entry.username, entry.password, entry.email) == (
        "ghcr.io",
        "robot",
        newer,
        "ci@example.com",
    )


def test_kv1_mount(stack: Stack, vault_client: hvac.Client, tmp_path: Path) -> None:
    mount = _mount(vault_client, "kv1", "1")
    password = _secret("kv1-password")
    vault_client.secrets.kv.v1.create_or_update_secret(
        "robots/ci", {"username": "ci", "password": password}, mount_point=mount
    )
    config, _ = _approle(stack.vault, vault_client, tmp_path, _policy(vault_client, mount))
    credential = VaultCredential.model_validate(
        {"name": "quay", "registry": "quay.io", "vault": {"kv": 1, "mount": mount, "path": "robots/ci"}}
    )
    fetched = VaultSource(VaultSession(config)).fetch(credential)
    assert (fetched.entries[0].username, fetched.entries[0].password) == ("ci", password)
    assert fetched.expires_at is None  # a KV v1 lease_duration is a refresh hint, not an expiry


def test_custom_field_names(approle_source: VaultSource, vault_client: hvac.Client, stored: Stored) -> None:
    token = _secret("robot-token")
    vault_client.secrets.kv.v2.create_or_update_secret(
        "robots/custom", secret={"login": "bot", "token": token, "mail": "bot@example.com"}, mount_point=stored.mount
    )
    credential = stored.credential(
        path="robots/custom", username_field="login", password_field="token", email_field="mail"
    )
    [entry] = approle_source.fetch(credential).entries
    assert (entry.username, entry.password, entry.email) == ("bot", token, "bot@example.com")


def test_logical_read_takes_the_lease_as_expiry(stack: Stack, vault_client: hvac.Client, tmp_path: Path) -> None:
    # A KV v1 `ttl` key makes a plain logical read answer with that lease_duration, as a dynamic engine would.
    mount = _mount(vault_client, "leased", "1")
    password = _secret("leased-password")
    vault_client.secrets.kv.v1.create_or_update_secret(
        "robots/ci", {"username": "ci", "password": password, "ttl": "30m"}, mount_point=mount
    )
    config, _ = _approle(stack.vault, vault_client, tmp_path, _policy(vault_client, mount))
    fixed = utcnow()
    source = VaultSource(VaultSession(config, now=lambda: fixed))
    credential = VaultCredential.model_validate(
        {"name": "dynamic", "registry": "registry.example:5000", "vault": {"mount": mount, "path": "robots/ci"}}
    )
    fetched = source.fetch(credential)
    assert fetched.entries[0].password == password
    assert fetched.expires_at == fixed + dt.timedelta(minutes=30)


FIXED = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def _gcp_shaped(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, fields: dict[str, Any]
) -> tuple[VaultSource, str]:
    """A plain logical path answering as Vault's GCP engine does (`token`, `token_ttl`,
    `expires_at_seconds`, no username), read with a clock fixed at FIXED; and its mount."""
    mount = _mount(vault_client, "gcp-shaped", "1")
    vault_client.secrets.kv.v1.create_or_update_secret("roleset/gar/token", fields, mount_point=mount)
    config, _ = _approle(stack.vault, vault_client, tmp_path, _policy(vault_client, mount))
    return VaultSource(VaultSession(config, now=lambda: FIXED)), mount


def _gcp_credential(mount: str, **vault: Any) -> VaultCredential:
    spec = {"mount": mount, "path": "roleset/gar/token", "username": "oauth2accesstoken"}
    spec |= {"password_field": "token", **vault}
    return VaultCredential.model_validate({"name": "gar", "registry": "europe-docker.pkg.dev", "vault": spec})


def test_gcp_engine_shape_constant_username_and_expiry_from_its_fields(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path
) -> None:
    token = _secret("ya29-access-token")
    expires = int((FIXED + dt.timedelta(minutes=50)).timestamp())
    fields = {"token": token, "token_ttl": 3599, "expires_at_seconds": expires}
    source, mount = _gcp_shaped(stack, vault_client, tmp_path, fields)
    fetched = source.fetch(_gcp_credential(mount, expires_at_field="expires_at_seconds", ttl_field="token_ttl"))
    [entry] = fetched.entries
    assert (entry.username, entry.password) == ("oauth2accesstoken", token)
    assert fetched.expires_at == FIXED + dt.timedelta(minutes=50)  # the earlier of the two fields
    assert source.fetch(_gcp_credential(mount, ttl_field="token_ttl")).expires_at == FIXED + dt.timedelta(seconds=3599)
    rfc3339 = {**fields, "expires_at_seconds": "2026-12-04T12:30:00+00:00"}
    vault_client.secrets.kv.v1.create_or_update_secret("roleset/gar/token", rfc3339, mount_point=mount)
    at = source.fetch(_gcp_credential(mount, expires_at_field="expires_at_seconds")).expires_at
    assert at == FIXED + dt.timedelta(minutes=30)


@pytest.mark.parametrize(
    ("fields", "vault", "message"),
    [
        ({"token": "t"}, {"ttl_field": "token_ttl"}, "TTL field 'token_ttl' is missing"),
        ({"token": "t", "token_ttl": "soon"}, {"ttl_field": "token_ttl"}, "TTL field 'token_ttl' at "),
        ({"token": "t", "exp": "12/04/2026"}, {"expires_at_field": "exp"}, "expiry field 'exp' at "),
        ({"token": "t", "exp": "2026-12-04T12:30:00"}, {"expires_at_field": "exp"}, "RFC 3339 time with an offset"),
    ],
)
def test_expiry_fields_that_do_not_say_when_are_refused_by_name(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, fields: dict[str, Any], vault: dict[str, str], message: str
) -> None:
    source, mount = _gcp_shaped(stack, vault_client, tmp_path, fields)
    error = _expect(InvalidCredential, source, _gcp_credential(mount, **vault))
    assert message in str(error)


def test_missing_path_is_not_found(approle_source: VaultSource, stored: Stored) -> None:
    error = _expect(CredentialNotFound, approle_source, stored.credential(name="absent", path="registry/absent"))
    assert f"{stored.mount}/registry/absent" in str(error)
    assert "'absent'" in str(error)


def test_deleted_latest_version_is_not_found(
    approle_source: VaultSource, vault_client: hvac.Client, stored: Stored
) -> None:
    vault_client.secrets.kv.v2.delete_latest_version_of_secret(stored.path, mount_point=stored.mount)
    error = _expect(CredentialNotFound, approle_source, stored.credential())
    assert f"{stored.mount}/{stored.path}" in str(error)


def test_missing_field_is_invalid(approle_source: VaultSource, vault_client: hvac.Client, stored: Stored) -> None:
    vault_client.secrets.kv.v2.create_or_update_secret(
        "robots/no-password", secret={"username": "robot", "token": _secret("unused")}, mount_point=stored.mount
    )
    error = _expect(InvalidCredential, approle_source, stored.credential(path="robots/no-password"))
    assert "'password'" in str(error)
    assert f"{stored.mount}/robots/no-password" in str(error)


def test_non_string_field_is_invalid(approle_source: VaultSource, vault_client: hvac.Client, stored: Stored) -> None:
    nested = _secret("nested-password")
    vault_client.secrets.kv.v2.create_or_update_secret(
        "robots/nested", secret={"username": "robot", "password": {"value": nested}}, mount_point=stored.mount
    )
    error = _expect(InvalidCredential, approle_source, stored.credential(path="robots/nested"))
    assert "'password'" in str(error)
    assert "dict" in str(error)


def test_path_outside_the_policy_is_denied_after_one_new_login(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    other = _mount(vault_client, "kv2-other", "2")
    vault_client.secrets.kv.v2.create_or_update_secret(
        "x", secret={"username": "u", "password": _secret("forbidden")}, mount_point=other
    )
    config, mount = _approle(stack.vault, vault_client, tmp_path, stored.policy)
    error = _expect(SourceDenied, VaultSource(VaultSession(config)), stored.credential(mount=other, path="x"))
    assert f"{other}/x" in str(error)
    assert "403" in str(error)
    assert _audited(stack, f"auth/{mount}/login") == 2  # the first login, and one more after the 403


# --- logging in ---------------------------------------------------------------------------------


def test_approle_login_is_reused_across_credentials_and_fetches(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    vault_client.secrets.kv.v2.create_or_update_secret(
        "registry/quay", secret={"username": "q", "password": _secret("quay")}, mount_point=stored.mount
    )
    config, mount = _approle(stack.vault, vault_client, tmp_path, stored.policy)
    source = VaultSource(VaultSession(config))
    for _ in range(3):
        source.fetch(stored.credential())
        source.fetch(stored.credential(name="quay", path="registry/quay"))
    assert _audited(stack, f"auth/{mount}/login") == 1
    assert _audited(stack, f"{stored.mount}/data/registry/quay", stored.policy) == 3


def _token(root: hvac.Client, policy: str) -> str:
    return _register(str(root.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]), "vault token")


def test_token_auth_rereads_a_rotated_token_file(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    token_file = tmp_path / "vault-token"
    first = _token(vault_client, stored.policy)
    token_file.write_text(first + "\n")
    source = VaultSource(VaultSession(_config(stack.vault, method="token", token_file=token_file)))
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    vault_client.auth.token.revoke(first)
    token_file.write_text(_token(vault_client, stored.policy))
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    # The fixture's write as root; the first token: ok, then 403 (revoked); the token re-read from the file: ok.
    assert _audited(stack, f"{stored.mount}/data/{stored.path}") == 4
    assert _audited(stack, "auth/token/lookup-self", stored.policy) == 2  # each token looked up once


def test_token_auth_from_the_environment(
    stack: Stack, vault_client: hvac.Client, stored: Stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", _token(vault_client, stored.policy))
    source = VaultSource(VaultSession(_config(stack.vault, method="token")))
    assert source.fetch(stored.credential()).entries[0].password == stored.password


@dataclass
class Cluster:
    """The test apiserver: clients, and a namespace of this test's own."""

    api: client.ApiClient
    core: client.CoreV1Api
    namespace: str

    def service_account_token(self, name: str, audiences: list[str]) -> str:
        spec = client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=600)
        request = client.AuthenticationV1TokenRequest(spec=spec)
        status = self.core.create_namespaced_service_account_token(name, self.namespace, request).status
        assert status is not None
        return _register(str(status.token), "service account JWT")

    def service_accounts(self, *names: str) -> None:
        for name in names:
            metadata = client.V1ObjectMeta(name=name)
            self.core.create_namespaced_service_account(self.namespace, client.V1ServiceAccount(metadata=metadata))

    def bind_token_reviewer(self, name: str) -> None:
        """OpenBao's kubernetes auth calls TokenReview with this ServiceAccount's token."""
        client.RbacAuthorizationV1Api(self.api).create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=f"{self.namespace}-{name}"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=self.namespace)],
            )
        )


@pytest.fixture
def cluster(kube_api: client.ApiClient, core_v1: client.CoreV1Api, namespace: str) -> Cluster:
    return Cluster(kube_api, core_v1, namespace)


def _kubernetes_auth(
    stack: Stack, cluster: Cluster, vault_client: hvac.Client, stored: Stored, audience: str | None = None
) -> str:
    """A kubernetes auth mount reviewing tokens with the test apiserver, and its role `syncd` for
    ServiceAccount syncd of the test's namespace (checking `audience` when given); the mount."""
    assert stack.kube.pki is not None
    cluster.service_accounts("vault-reviewer", "syncd")
    cluster.bind_token_reviewer("vault-reviewer")
    mount = _unique("kubernetes")
    vault_client.sys.enable_auth_method("kubernetes", path=mount)
    vault_client.auth.kubernetes.configure(
        kubernetes_host=stack.kube.url,
        kubernetes_ca_cert=stack.kube.pki.ca_cert.read_text(),
        token_reviewer_jwt=cluster.service_account_token("vault-reviewer", []),
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    vault_client.auth.kubernetes.create_role(
        "syncd",
        bound_service_account_names=["syncd"],
        bound_service_account_namespaces=[cluster.namespace],
        policies=[stored.policy],
        mount_point=mount,
        audience=audience,
    )
    return mount


def _apiserver_user(stack: Stack, token: str) -> str:
    """Who the apiserver takes `token` for (a SelfSubjectReview); ApiException 401 when it takes it for no one."""
    assert stack.kube.pki is not None
    configuration = client.Configuration(host=stack.kube.url)
    configuration.ssl_ca_cert = str(stack.kube.pki.ca_cert)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(configuration) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status is not None
    assert review.status.user_info is not None
    return str(review.status.user_info.username)


def test_kubernetes_auth(
    stack: Stack, cluster: Cluster, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    mount = _kubernetes_auth(stack, cluster, vault_client, stored)
    jwt_file = tmp_path / "sa-token"
    jwt_file.write_text(cluster.service_account_token("syncd", []))
    config = _config(stack.vault, method="kubernetes", role="syncd", mount=mount, token_file=jwt_file)
    source = VaultSource(VaultSession(config))
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    assert _audited(stack, f"auth/{mount}/login") == 1


def test_kubernetes_auth_with_a_vault_audience_token_that_the_apiserver_refuses(
    stack: Stack, cluster: Cluster, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    """The Helm chart's and deploy/kustomize's default: a projected token of audience `vault`, and a
    role with audience=vault. Vault (or whoever points vault.address elsewhere) receives a token the
    apiserver refuses, and the role refuses the pod's API token."""
    mount = _kubernetes_auth(stack, cluster, vault_client, stored, audience="vault")
    jwt_file = tmp_path / "vault-token"
    jwt_file.write_text(cluster.service_account_token("syncd", ["vault"]))  # as the kubelet projects it
    config = _config(stack.vault, method="kubernetes", role="syncd", mount=mount, token_file=jwt_file)
    assert VaultSource(VaultSession(config)).fetch(stored.credential()).entries[0].password == stored.password

    # What Vault received cannot be replayed against the apiserver: 401, it is no one there.
    with pytest.raises(ApiException) as refused:
        _apiserver_user(stack, jwt_file.read_text())
    assert refused.value.status == 401
    # The pod's API token (the apiserver's own audience) is syncd there...
    api_token = cluster.service_account_token("syncd", [])
    assert _apiserver_user(stack, api_token) == f"system:serviceaccount:{cluster.namespace}:syncd"
    # ...and the role refuses it, as it refuses a token for any other audience.
    for token in (api_token, cluster.service_account_token("syncd", ["someone-else"])):
        jwt_file.write_text(token)
        error = _expect(SourceDenied, VaultSource(VaultSession(config)), stored.credential())
        assert f"Vault refused the login at auth/{mount}/login (HTTP 4" in str(error)


def test_jwt_auth_with_a_service_account_token(
    stack: Stack, cluster: Cluster, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    assert stack.kube.pki is not None
    cluster.service_accounts("syncd")
    mount = _unique("jwt")
    vault_client.sys.enable_auth_method("jwt", path=mount)
    vault_client.auth.jwt.configure(
        jwt_validation_pubkeys=[stack.kube.pki.sa_public_key.read_text()], bound_issuer=f"{stack.kube.url}/", path=mount
    )
    vault_client.auth.jwt.create_role(
        "syncd",
        user_claim="sub",
        allowed_redirect_uris=[],
        role_type="jwt",
        bound_audiences=["syncd-vault"],
        token_policies=[stored.policy],
        path=mount,
    )
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(cluster.service_account_token("syncd", ["syncd-vault"]))
    config = _config(stack.vault, method="jwt", role="syncd", mount=mount, token_file=jwt_file)
    assert VaultSource(VaultSession(config)).fetch(stored.credential()).entries[0].password == stored.password
    # A token for another audience is refused: OpenBao really checked it.
    jwt_file.write_text(cluster.service_account_token("syncd", ["someone-else"]))
    error = _expect(SourceDenied, VaultSource(VaultSession(config)), stored.credential())
    assert f"auth/{mount}/login" in str(error)


# --- keeping the token valid --------------------------------------------------------------------


def test_revoked_token_is_replaced_by_a_new_login(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    config, mount = _approle(stack.vault, vault_client, tmp_path, stored.policy)
    source = VaultSource(VaultSession(config))
    source.fetch(stored.credential())
    vault_client.sys.revoke_prefix(f"auth/{mount}/login")
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    assert _audited(stack, f"auth/{mount}/login") == 2


class ShiftedClock:
    """Real time plus an offset, so that a test can be 'later' without sleeping."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset


def test_short_lived_token_is_renewed(stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored) -> None:
    config, mount = _approle(stack.vault, vault_client, tmp_path, stored.policy, token_ttl="10s", token_max_ttl="60s")
    clock = ShiftedClock()
    source = VaultSource(VaultSession(config, now=clock))
    source.fetch(stored.credential())
    assert _audited(stack, "auth/token/renew-self", stored.policy) == 0
    clock.offset = dt.timedelta(seconds=6)  # more than half of the 10 s TTL is gone
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    assert _audited(stack, "auth/token/renew-self", stored.policy) == 1
    assert _audited(stack, f"auth/{mount}/login") == 1


def test_expired_token_is_replaced_before_the_request(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored
) -> None:
    config, mount = _approle(stack.vault, vault_client, tmp_path, stored.policy, token_ttl="10s", token_max_ttl="60s")
    clock = ShiftedClock()
    source = VaultSource(VaultSession(config, now=clock))
    source.fetch(stored.credential())
    clock.offset = dt.timedelta(seconds=11)
    source.fetch(stored.credential())
    assert _audited(stack, f"auth/{mount}/login") == 2
    assert _audited(stack, f"{stored.mount}/data/{stored.path}", stored.policy) == 2  # no 403 on the way


# --- namespaces and TLS -------------------------------------------------------------------------


def test_namespace(stack: Stack, vault_client: hvac.Client, tmp_path: Path) -> None:
    ns = _unique("team")
    vault_client.sys.create_namespace(ns)
    ns_root = hvac.Client(url=stack.vault.address, token=stack.vault.token, namespace=ns)
    mount = _mount(ns_root, "kv2", "2")
    password = _secret("namespaced")
    ns_root.secrets.kv.v2.create_or_update_secret(
        "r", secret={"username": "u", "password": password}, mount_point=mount
    )
    config, _ = _approle(stack.vault, ns_root, tmp_path, _policy(ns_root, mount))
    credential = VaultCredential.model_validate(
        {"name": "ns", "registry": "r.example", "vault": {"mount": mount, "path": "r", "kv": 2}}
    )
    in_namespace = VaultConfig.model_validate({**config.model_dump(mode="json"), "namespace": ns})
    assert VaultSource(VaultSession(in_namespace)).fetch(credential).entries[0].password == password
    # The same login outside the namespace finds no such auth mount.
    _expect(SourceDenied, VaultSource(VaultSession(config)), credential)


@pytest.fixture
def tls_vault(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """A second OpenBao with `-dev-tls`: its address, the CA it generated, and its root token."""
    certs, root = tmp_path / "tls-certs", _secret("tls-root")
    certs.mkdir()
    port = free_port()
    server = Server("openbao-tls", tmp_path)
    argv = [str(find_bao()), "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={certs}"]
    argv += [f"-dev-root-token-id={root}", f"-dev-listen-address=127.0.0.1:{port}"]
    server.start(argv, env={"BAO_ADDR": "", "VAULT_ADDR": ""})
    address, ca = f"https://127.0.0.1:{port}", certs / "vault-ca.pem"
    try:
        server.wait_healthy(lambda: requests.get(f"{address}/v1/sys/health", verify=str(ca), timeout=2).ok)
        yield address, ca, root
    finally:
        server.stop()


def test_tls_is_verified_with_ca_cert(tls_vault: tuple[str, Path, str], tmp_path: Path) -> None:
    address, ca, root = tls_vault
    password = _secret("tls-password")
    hvac.Client(url=address, token=root, verify=str(ca)).secrets.kv.v2.create_or_update_secret(
        "registry", secret={"username": "u", "password": password}
    )
    token_file = tmp_path / "token"
    token_file.write_text(root)
    credential = VaultCredential.model_validate(
        {"name": "tls", "registry": "r.example", "vault": {"kv": 2, "path": "registry"}}
    )
    auth = {"method": "token", "token_file": str(token_file)}
    trusted = VaultConfig.model_validate({"address": address, "ca_cert": str(ca), "auth": auth})
    assert VaultSource(VaultSession(trusted)).fetch(credential).entries[0].password == password
    untrusted = VaultConfig.model_validate({"address": address, "auth": auth})
    error = _expect(SourceUnavailable, VaultSource(VaultSession(untrusted)), credential)
    assert "TLS verification" in str(error)


# --- what reaches logs and errors; OpenBao going away -------------------------------------------


def test_no_secret_value_in_logs_or_errors(
    stack: Stack, vault_client: hvac.Client, tmp_path: Path, stored: Stored, caplog: pytest.LogCaptureFixture
) -> None:
    """A login, a fetch and a failed fetch, at DEBUG: syncd's logs are collected, and carry no secret.
    (`_no_secret_in_output` holds every test of this module to the same after it.)"""
    config, _ = _approle(stack.vault, vault_client, tmp_path, stored.policy)
    source = VaultSource(VaultSession(config))
    assert source.fetch(stored.credential()).entries[0].password == stored.password
    _expect(CredentialNotFound, source, stored.credential(name="absent", path="registry/absent"))
    text = "\n".join([caplog.text, *OUTPUT])
    assert "logged in to Vault" in text  # the collection does capture syncd's logs...
    assert "fetched credential" in text  # ...at DEBUG
    assert {"secret_id", "registry-password"} <= set(SECRETS.values())  # what this test handled is registered
    leaked = _leaked(text)  # labels: no value in the report
    assert not leaked, f"secret value(s) labelled {leaked} appear in logs or errors"


def test_vault_stopped_is_unavailable(private_vault: Vault, tmp_path: Path) -> None:
    root = hvac.Client(url=private_vault.address, token=private_vault.token)
    mount = _mount(root, "kv2", "2")
    password = _secret("registry-password")
    root.secrets.kv.v2.create_or_update_secret(
        "registry/ghcr", secret={"username": "robot", "password": password}, mount_point=mount
    )
    stored = Stored(mount, "registry/ghcr", password, _policy(root, mount))
    config, _ = _approle(private_vault, root, tmp_path, stored.policy)
    source = VaultSource(VaultSession(config))
    assert source.fetch(stored.credential()).entries[0].password == password
    private_vault.stop()
    error = _expect(SourceUnavailable, source, stored.credential())
    assert "cannot connect to Vault" in str(error)
    assert stored.password not in str(error)
