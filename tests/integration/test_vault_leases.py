"""Vault leases against a real OpenBao and its database engine over a real PostgreSQL: no emulation.

Why the database engine: OpenBao's kubernetes secrets engine hands out a login only on a write
(`POST kubernetes/creds/<role>`: a GET is "unsupported operation"), and syncd reads. The database
engine answers a plain read of `database/creds/<role>` with a leased login, and revoking the lease
drops the PostgreSQL role it made, which `pg_roles` shows. So every login syncd writes is a role,
and a role gone is a lease revoked.

The invariant watched throughout (`HeldRolesWatch`): no login a Secret holds is ever a dropped role,
i.e. no lease is revoked while a namespace still holds its login.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.postgres import Postgres, running_postgres
from harness.syncd_process import Start, SyncdProcess, new_namespace
from harness.vault import Vault
from harness.wait import wait_until

FAST = {"interval": "2s", "jitter": "0s", "retry": {"min": "1s", "max": "2s"}}
CREATE_ROLE = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


def _database_engine(vault: Vault, pg: Postgres) -> hvac.Client:
    """`rotating`: a lease that cannot be renewed past its first TTL (max_ttl = ttl: every renewal
    grants less than asked); `renewing`: one renewable for a day."""
    bao = hvac.Client(url=vault.address, token=vault.token)
    bao.sys.enable_secrets_engine("database", path="database")
    bao.write(
        "database/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        username="postgres",
        password="trust-auth-ignores-it",
        allowed_roles="*",
    )
    bao.write("database/roles/rotating", db_name="pg", creation_statements=CREATE_ROLE, default_ttl="1h", max_ttl="1h")
    bao.write("database/roles/renewing", db_name="pg", creation_statements=CREATE_ROLE, default_ttl="1h", max_ttl="24h")
    return bao


@dataclass
class World:
    core_v1: client.CoreV1Api
    # namespace -> the Secret (spec) name it gets
    secrets: dict[str, str]

    def held(self, namespaces: list[str] | None = None) -> dict[str, str | None]:
        """The ghcr.io username each namespace's Secret holds (None: no Secret yet)."""
        found: dict[str, str | None] = {}
        for namespace in namespaces or list(self.secrets):
            try:
                secret = self.core_v1.read_namespaced_secret(self.secrets[namespace], namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                found[namespace] = None
                continue
            content = base64.b64decode((secret.data or {})[".dockerconfigjson"])
            found[namespace] = json.loads(content)["auths"]["ghcr.io"]["username"]
        return found


@dataclass
class HeldRolesWatch:
    """Polls, in the background, that every login the Secrets hold is a live role. A login held on
    both sides of one `pg_roles` read was held during it: missing there, it was revoked under a Secret."""

    world: World
    pg: Postgres
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(0.2):
            before = set(self.world.held().values()) - {None}
            roles = self.pg.roles()
            after = set(self.world.held().values()) - {None}
            self.violations += sorted(str(login) for login in (before & after) - roles)
            self.checks += 1

    def __enter__(self) -> HeldRolesWatch:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _audit(vault: Vault, path: str) -> int:
    lines = [json.loads(line) for line in vault.audit_log.read_text().splitlines() if line.strip()]
    return sum(1 for e in lines if e.get("type") == "response" and e["request"].get("path") == path)


def _lease_ids(vault: Vault) -> set[str]:
    lines = [json.loads(line) for line in vault.audit_log.read_text().splitlines() if line.strip()]
    secrets = [(e.get("response") or {}).get("secret") or {} for e in lines if e.get("type") == "response"]
    return {s["lease_id"] for s in secrets if s.get("lease_id")}


def _count(syncd: SyncdProcess, metric: str, credential: str, result: str = "success") -> float:
    return syncd.metric(metric, credential=credential, result=result)


def _revoked(syncd: SyncdProcess, result: str = "success") -> float:
    return _count(syncd, "syncd_vault_lease_revocations_total", "rotating", result)


def _reads(syncd: SyncdProcess, credential: str = "rotating") -> float:
    return syncd.metric("syncd_source_requests_total", credential=credential, source="vault", result="success")


def _deny_updates(kube_api: client.ApiClient, name: str, namespace: str) -> None:
    """A ValidatingAdmissionPolicy refusing every Secret update in `namespace`: a write that fails."""
    admission = client.AdmissionregistrationV1Api(kube_api)
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["secrets"]}]
    policy = client.V1ValidatingAdmissionPolicy.from_dict(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": {"resourceRules": rules},
                "validations": [{"expression": "false", "message": "leases test: no Secret updates here"}],
            },
        }
    )
    assert policy is not None
    admission.create_validating_admission_policy(policy)
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    binding = client.V1ValidatingAdmissionPolicyBinding.from_dict(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": selector},
            },
        }
    )
    assert binding is not None
    admission.create_validating_admission_policy_binding(binding)


def _allow_updates(kube_api: client.ApiClient, name: str, *, missing_ok: bool = False) -> None:
    admission = client.AdmissionregistrationV1Api(kube_api)
    try:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
    except ApiException as exc:
        if not (missing_ok and exc.status == 404):
            raise


def _update_refused(core_v1: client.CoreV1Api, secret: str, namespace: str) -> bool:
    """A dry-run update goes through admission: refused once the policy is enforced."""
    try:
        core_v1.patch_namespaced_secret(secret, namespace, {"metadata": {"labels": {"probe": "x"}}}, dry_run="All")
    except ApiException as exc:
        if exc.status in (403, 422) and "ValidatingAdmissionPolicy" in str(exc.body):
            return True
        raise
    return False


def readme_lease_policy() -> str:
    """The Vault policy README "Leases" tells users to grant for renewals and revocations, as printed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```hcl\n(.*?)```", readme, re.DOTALL)
    found = [block for block in blocks if "sys/leases/renew" in block]
    assert len(found) == 1, "README has no single hcl block granting sys/leases/renew"
    return str(found[0])


def _policy_token(bao: hvac.Client) -> str:
    """A token with README's lease policy and a read of the engine's logins, nothing more: the
    policy the README prints is the one this test proves enough (a root token proved nothing)."""
    reads = 'path "database/creds/*" { capabilities = ["read"] }\n'
    bao.sys.create_or_update_policy("syncd-leases", reads + readme_lease_policy())
    created = bao.auth.token.create(policies=["syncd-leases"], ttl="1h")
    return str(created["auth"]["client_token"])


def test_leases_are_renewed_and_the_previous_one_revoked_once_every_namespace_holds_the_new_login(
    private_vault: Vault,
    postgres: Postgres,
    stack: Stack,
    core_v1: client.CoreV1Api,
    kube_api: client.ApiClient,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
    request: pytest.FixtureRequest,
) -> None:
    bao = _database_engine(private_vault, postgres)
    token_file = tmp_path / "token"
    token_file.write_text(_policy_token(bao))
    a, b, c, d = (f"{prefix}-{x}" for x in "abcd")
    for namespace, group in ((a, "one"), (b, "one"), (c, "two"), (d, "three")):
        new_namespace(core_v1, namespace, {"pull": f"{prefix}-{group}"})
    world = World(core_v1, {a: "regcred", b: "regcred", c: "second", d: "renewed"})
    rotating = {"mount": "database", "path": "creds/rotating"}
    config: dict[str, Any] = {
        "vault": {
            "address": private_vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": [
            # lifetime 3s: a new login every ~2 s (a lifetime also rules renewal out).
            {"name": "rotating", "registry": "ghcr.io", "lifetime": "3s", "vault": rotating},
            {"name": "renewing", "registry": "ghcr.io", "vault": {"mount": "database", "path": "creds/renewing"}},
        ],
        "secrets": [
            {"name": "regcred", "credentials": ["rotating"], "namespaces": {"selector": f"pull={prefix}-one"}},
            {"name": "second", "credentials": ["rotating"], "namespaces": {"selector": f"pull={prefix}-two"}},
            {"name": "renewed", "credentials": ["renewing"], "namespaces": {"selector": f"pull={prefix}-three"}},
        ],
        "schedule": FAST,
    }
    with HeldRolesWatch(world, postgres) as watch:
        syncd = start_syncd(config)
        wait_until(lambda: None not in world.held().values(), 20, "the first rollout")
        renewed_login = world.held([d])[d]

        # 1. Rotation: each replaced login is revoked once both specs wrote a newer one everywhere.
        wait_until(lambda: _revoked(syncd) >= 3, 20, "three revocations")
        first = set(world.held([a, b, c]).values())

        # 2. Renewal: the renewable lease is renewed in place of a new read, and kept.
        wait_until(lambda: _count(syncd, "syncd_vault_lease_renewals_total", "renewing") >= 1, 20, "a renewal")
        assert world.held([d])[d] == renewed_login
        assert _reads(syncd, "renewing") == 1
        assert renewed_login in postgres.roles()
        assert _audit(private_vault, "sys/leases/renew") >= 1

        # 3. A rollout failing half-way (updates refused in b): nothing is revoked from then on.
        _deny_updates(kube_api, f"{prefix}-deny", b)
        request.addfinalizer(lambda: _allow_updates(kube_api, f"{prefix}-deny", missing_ok=True))
        wait_until(lambda: _update_refused(core_v1, "regcred", b), 30, "the policy to be enforced")
        failed = {"secret": "regcred", "operation": "update", "result": "failure"}
        wait_until(lambda: syncd.metric("syncd_secret_writes_total", **failed) >= 1, 20, "a refused update")
        stuck = world.held([b])[b]
        reads = _reads(syncd)
        wait_until(lambda: _reads(syncd) >= reads + 2, 20, "two more logins read")  # in-flight ones settle
        revoked, reads = _revoked(syncd), _reads(syncd)
        wait_until(lambda: _reads(syncd) >= reads + 3, 20, "three more logins read")
        assert _revoked(syncd) == revoked
        assert world.held([b])[b] == stuck
        assert stuck in postgres.roles()
        assert world.held([a])[a] != stuck  # a got the newer logins: the rollout did fail half-way

        # 4. Updates allowed again: b catches up, and the leases held back are revoked, each once.
        _allow_updates(kube_api, f"{prefix}-deny")
        wait_until(lambda: stuck not in postgres.roles(), 30, "the stuck login's lease revoked")
        assert first.isdisjoint(postgres.roles())
        assert _revoked(syncd, "failure") == 0
        # Each revocation syncd counts is one revoke OpenBao answered (the daemon keeps syncing, so
        # the two are read until they agree rather than once, which races the next revocation).
        wait_until(lambda: _audit(private_vault, "sys/leases/revoke") == _revoked(syncd), 10, "audit == metric")

        # 5. A restart: shutdown revokes nothing, and the new process never revokes what Secrets hold.
        assert syncd.terminate() == 0
        at_stop = postgres.roles()
        held = set(world.held().values())
        assert held <= at_stop
        revocations = _audit(private_vault, "sys/leases/revoke")
        again = start_syncd(config, name="again")
        wait_until(lambda: held.isdisjoint(world.held([a, b, c]).values()), 20, "the new process's rollout")
        wait_until(lambda: _revoked(again) >= 2, 20, "the new process revoking its own replaced leases")
        assert held <= postgres.roles()
        assert _audit(private_vault, "sys/leases/revoke") == revocations + _revoked(again)

    assert watch.checks > 20
    assert watch.violations == [], "a lease was revoked while a Secret held its login"
    logs, leases = syncd.log() + again.log(), _lease_ids(private_vault)
    assert leases
    assert all(lease.startswith("database/creds/") for lease in leases)
    assert not [lease for lease in leases if lease in logs]
    assert "database/creds" not in again.metrics()
