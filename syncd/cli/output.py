"""CLI output: aligned tables for people, JSON for scripts. Never a secret value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from syncd.cli.explain import Explanation
from syncd.cli.status import StatusRow
from syncd.core.values import Action, SyncResult
from syncd.engine.repair import RepairOutcome


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip() for line in lines)


def plan_table(results: Sequence[SyncResult]) -> str:
    """Secrets (create / update / unchanged / conflict / adopt / prune) and ServiceAccount references
    (link / unlink), one row each."""
    rows = [
        [r.secret, o.change.namespace, o.change.action.value, o.error or o.change.reason]
        for r in results
        for o in r.outcomes
    ]
    rows += [
        [c.secret, c.namespace, c.action, c.error or f"ServiceAccount {c.service_account}"]
        for r in results
        for c in r.account_changes
    ]
    return table(["SECRET", "NAMESPACE", "ACTION", "DETAIL"], rows) if rows else "nothing to do"


def summary(results: Sequence[SyncResult]) -> str:
    lines = []
    for r in results:
        counts = ", ".join(
            f"{n} {name}"
            for name, n in (
                ("created", r.count(Action.CREATE)),
                ("updated", r.count(Action.UPDATE)),
                ("unchanged", r.count(Action.UNCHANGED)),
                ("adopted", r.count(Action.ADOPT)),
                ("pruned", r.count(Action.PRUNE)),
                ("conflict", len(r.conflicts)),
                ("failed", len(r.failed_writes)),
                ("linked", sum(1 for c in r.account_changes if c.link and c.error is None)),
                ("unlinked", sum(1 for c in r.account_changes if not c.link and c.error is None)),
            )
            if n
        )
        lines.append(f"{r.secret}: {r.result}" + (f" ({counts})" if counts else ""))
        lines += [f"  error: {e}" for e in r.errors]
        lines += [f"  {o.change.namespace}: {o.error}" for o in r.failed_writes]
        lines += [f"  {o.change.namespace}: conflict: {o.change.reason}" for o in r.conflicts]
    return "\n".join(lines)


def repairs_table(repairs: Sequence[RepairOutcome]) -> str:
    """repair_pods: the Pods evicted (or that --dry-run would evict), one row each."""
    rows = [[*_repair_row(r).values()] for r in repairs]
    headers = ["POD", "OWNER", "IMAGE", "SECRET", "REPAIR", "DETAIL"]
    return table(headers, rows) if rows else "repair_pods: no Pod stuck without its pull Secret"


def _repair_row(repair: RepairOutcome) -> dict[str, str]:
    eviction = repair.eviction
    return {
        "pod": f"{eviction.pod.namespace}/{eviction.pod.name}",
        "owner": f"{eviction.owner.kind}/{eviction.owner.name}",
        "image": eviction.image,
        "secret": eviction.secret,
        "action": repair.action.value,
        "error": repair.error or "",
    }


def results_json(results: Sequence[SyncResult], repairs: Sequence[RepairOutcome] | None = None) -> str:
    """One object per spec; with repair_pods each has `repairs`, the Pods evicted for its Secret."""
    return json.dumps(
        [
            {
                "secret": r.secret,
                "result": r.result,
                "dry_run": r.dry_run,
                "errors": r.errors,
                "namespaces": [
                    {
                        "namespace": o.change.namespace,
                        "action": o.change.action.value,
                        "reason": o.change.reason,
                        "error": o.error,
                    }
                    for o in r.outcomes
                ],
                "service_accounts": [
                    {
                        "namespace": c.namespace,
                        "service_account": c.service_account,
                        "secret": c.secret,
                        "action": c.action,
                        "error": c.error,
                    }
                    for c in r.account_changes
                ],
                **(
                    {"repairs": [_repair_row(p) for p in repairs if p.eviction.secret == r.secret]}
                    if repairs is not None
                    else {}
                ),
            }
            for r in results
        ],
        indent=2,
    )


def explain_table(explanation: Explanation) -> str:
    rows = [[str(i), o.secret, o.key, o.credential or "-"] for i, o in enumerate(explanation.offers, start=1)]
    headers = ["ORDER", "SECRET", "KEY", "CREDENTIAL"]
    if any(o.login is not None for o in explanation.offers):  # --verify: what the registry said
        headers.append("LOGIN")
        rows = [[*row, o.login or "not tried"] for row, o in zip(rows, explanation.offers, strict=True)]
    head = (
        f"image {explanation.image} in namespace {explanation.namespace}, ServiceAccount "
        f"{explanation.service_account} (imagePullSecrets: {', '.join(explanation.pull_secrets) or 'none'})"
    )
    body = table(headers, rows) if rows else "no login is offered: the pull is anonymous"
    return "\n".join([head, body, *(f"problem: {p}" for p in explanation.problems)])


def explain_json(explanation: Explanation) -> str:
    document = asdict(explanation)
    for offer in document["offers"]:  # `login` only with --verify, so that plain output stays as it was
        if offer["login"] is None:
            del offer["login"]
    return json.dumps({**document, "ok": explanation.ok}, indent=2)


def status_table(rows: Sequence[StatusRow]) -> str:
    cells = [[r.secret, r.namespace, r.state, ",".join(r.registries), r.synced_at or "", r.detail] for r in rows]
    return (
        table(["SECRET", "NAMESPACE", "STATE", "REGISTRIES", "SYNCED-AT", "DETAIL"], cells)
        if cells
        else "no namespaces selected"
    )


def status_json(rows: Sequence[StatusRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c.get("type") == kind), {})


def pullsync_rows(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `status --from-cluster` reports of each PullSecretSync: names, conditions and counts."""
    rows = []
    for obj in sorted(objects, key=lambda o: str(o.get("metadata", {}).get("name", ""))):
        status, spec = obj.get("status", {}), obj.get("spec", {})
        ready = _condition(obj, "Ready")
        namespaces = status.get("namespaces", {})
        rows.append(
            {
                "name": obj.get("metadata", {}).get("name", ""),
                "instance": spec.get("instance", ""),
                "secret": spec.get("secret", ""),
                "ready": ready.get("status", "Unknown"),
                "reason": ready.get("reason", ""),
                "message": ready.get("message", ""),
                "in_sync": namespaces.get("inSync", 0),
                "selected": namespaces.get("selected", 0),
                "expires_at": status.get("expiresAt", ""),
                "last_sync": status.get("lastSyncTime", ""),
                "conditions": {c.get("type"): c.get("status") for c in status.get("conditions", [])},
                "failures": status.get("failures", []),
                "failures_omitted": status.get("failuresOmitted", 0),
            }
        )
    return rows


def pullsync_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = ["NAME", "INSTANCE", "SECRET", "READY", "REASON", "IN-SYNC", "EXPIRES", "LAST-SYNC"]
    keys = ("name", "instance", "secret", "ready", "reason")
    cells = [[*(r[k] for k in keys), f"{r['in_sync']}/{r['selected']}", r["expires_at"], r["last_sync"]] for r in rows]
    return table(headers, cells) if cells else "no PullSecretSync objects (is syncd running, and the CRD installed?)"


def pullsync_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2)
