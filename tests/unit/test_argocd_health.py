"""deploy/argocd/health.lua, run by a real Lua interpreter (Debian's lua5.4, `make deps`) on the
statuses syncd itself computes for each condition (syncd/engine/pullsync_status.py)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.core.values import Action, ChangeOutcome, PlannedChange, SyncResult
from syncd.engine.pullsync_status import CredentialFacts, Identity, SpecLedger, carry_transitions, status_of

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/argocd/health.lua"
NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
FRESH = [CredentialFacts("hub", "vault", ("docker.io",), NOW + 11 * HOUR, NOW - HOUR)]


def lua_literal(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"[{lua_literal(k)}]={lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ",".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid Lua string literal for these values


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = shutil.which("lua5.4")
    assert lua, "lua5.4 is missing: run `make deps`"
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = assert(loadfile({json.dumps(str(SCRIPT))}))()\n"
        "io.write(hs.status, '\\n', hs.message or '')\n"
    )
    result = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.partition("\n")
    return status, message


def pullsync(ledger: SpecLedger, credentials: list[CredentialFacts], now: dt.datetime = NOW) -> dict[str, Any]:
    status = status_of(ledger, credentials, Identity("default", "syncd-0", "sha256:0", 0.25), now, generation=1)
    return {"metadata": {"name": "default.regcred", "generation": 1}, "status": carry_transitions(status, None, now)}


def ledger(*outcomes: ChangeOutcome, source_errors: list[str] | None = None) -> SpecLedger:
    found = SpecLedger("regcred")
    found.record(SyncResult("regcred", outcomes=list(outcomes), source_errors=source_errors or []), NOW)
    return found


def ok(namespace: str, action: Action = Action.UNCHANGED, error: str | None = None) -> ChangeOutcome:
    return ChangeOutcome(PlannedChange(namespace, "regcred", action), error=error)


@pytest.mark.parametrize(
    ("name", "obj", "expected"),
    [
        ("no status yet", {"metadata": {"generation": 1}}, "Progressing"),
        ("in sync", pullsync(ledger(ok("a"), ok("b")), FRESH), "Healthy"),
        ("never synced", pullsync(SpecLedger("regcred"), []), "Progressing"),
        ("source down", pullsync(ledger(source_errors=["credential hub: Vault unavailable"]), FRESH), "Degraded"),
        ("a write failed", pullsync(ledger(ok("a"), ok("b", Action.CREATE, "HTTP 500")), FRESH), "Degraded"),
        ("a conflict", pullsync(ledger(ok("a"), ok("b", Action.CONFLICT)), FRESH), "Degraded"),
        (
            "refresh overdue",
            pullsync(ledger(ok("a")), [CredentialFacts("hub", "vault", ("docker.io",), NOW + HOUR, NOW - 11 * HOUR)]),
            "Degraded",
        ),
        (
            "expired",
            pullsync(ledger(ok("a")), [CredentialFacts("hub", "vault", ("docker.io",), NOW - HOUR, NOW - 12 * HOUR)]),
            "Degraded",
        ),
    ],
)
def test_health_of_each_condition(name: str, obj: dict[str, Any], expected: str) -> None:
    status, message = health(obj)
    assert status == expected, (name, message)
    assert message


def test_an_unobserved_generation_is_progressing() -> None:
    obj = pullsync(ledger(ok("a")), FRESH)
    obj["metadata"]["generation"] = 2
    assert health(obj)[0] == "Progressing"


def test_the_configmap_ships_the_same_script() -> None:
    documents = [d for d in yaml.safe_load_all((ROOT / "deploy/argocd/argocd-cm.yaml").read_text()) if d]
    [configmap] = documents
    assert configmap["data"]["resource.customizations.health.syncd.io_PullSecretSync"] == SCRIPT.read_text()
