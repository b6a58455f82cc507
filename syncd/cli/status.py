"""`syncd status`: what is in the cluster now, per spec and namespace. Never calls a source.

States: in_sync (ours and intact), stale (ours but edited by hand, from other credentials, of
the wrong type, or in a namespace no longer selected), missing, conflict (a Secret of that name
that syncd does not manage, or that another syncd instance manages).
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.config import Config, SecretSpec
from syncd.core.values import SECRET_TYPE, ExistingSecret, Ownership
from syncd.engine.ports import Cluster


@dataclass(frozen=True)
class StatusRow:
    secret: str
    namespace: str
    state: str
    registries: tuple[str, ...] = ()
    synced_at: str | None = None
    detail: str = ""


def _stale_reason(spec: SecretSpec, secret: ExistingSecret) -> str:
    if secret.secret_type != SECRET_TYPE:
        return f"type is {secret.secret_type}"
    if secret.data_hash != secret.annotated_hash:
        return "data edited outside syncd"
    if secret.credentials != ",".join(spec.credentials):
        return "written from other credentials than the spec lists"
    return ""


def _row(spec: SecretSpec, namespace: str, secret: ExistingSecret | None, instance: str) -> StatusRow:
    if secret is None:
        return StatusRow(spec.name, namespace, "missing")
    ownership = secret.ownership(instance)
    if ownership is Ownership.UNMANAGED:
        return StatusRow(spec.name, namespace, "conflict", detail="a Secret of that name that syncd does not manage")
    if ownership is Ownership.OTHER_INSTANCE:
        return StatusRow(spec.name, namespace, "conflict", detail=f"managed by syncd instance {secret.instance!r}")
    if ownership is Ownership.LEGACY:
        detail = "written by syncd 0.1.0 (no instance label); taken over on the next sync"
        return StatusRow(spec.name, namespace, "stale", secret.registries, secret.synced_at, detail)
    reason = _stale_reason(spec, secret)
    return StatusRow(
        spec.name, namespace, "stale" if reason else "in_sync", secret.registries, secret.synced_at, reason
    )


def spec_status(cluster: Cluster, spec: SecretSpec, instance: str) -> list[StatusRow]:
    selected = cluster.select_namespaces(spec.namespaces)
    labelled = {s.namespace: s for s in cluster.managed_secrets(spec.name)}
    rows = [_row(spec, ns, labelled.get(ns) or cluster.read_secret(ns, spec.name), instance) for ns in selected]
    managed = {ns: s for ns, s in labelled.items() if s.ownership(instance) is Ownership.OURS}
    for namespace in sorted(set(managed) - set(selected)):
        secret = managed[namespace]
        rows.append(
            StatusRow(
                spec.name, namespace, "stale", secret.registries, secret.synced_at, "namespace no longer selected"
            )
        )
    return rows


def cluster_status(cluster: Cluster, config: Config) -> list[StatusRow]:
    return [row for spec in config.secrets for row in spec_status(cluster, spec, config.instance)]
