"""A password that is a JWT says when it expires; syncd refreshes before then and never writes an expired one."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import parse_config
from syncd.core.token_expiry import earliest, jwt_expiry
from syncd.core.values import RunResult
from syncd.engine.fetcher import Freshness
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster, FakeSource

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def jwt(claims: dict[str, object], header: dict[str, object] | None = None) -> str:
    return f"{_b64(header or {'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"


def test_the_exp_claim_of_a_jwt_is_its_expiry() -> None:
    exp = int((NOW + dt.timedelta(hours=3)).timestamp())
    assert jwt_expiry(jwt({"exp": exp, "sub": "robot"})) == NOW + dt.timedelta(hours=3)
    assert jwt_expiry(jwt({"exp": exp + 0.5})) == NOW + dt.timedelta(hours=3, milliseconds=500)


@pytest.mark.parametrize(
    "password",
    [
        "dckr_pat_2b3e36beeb386dfdaacb9b46004ccb7c",  # Docker Hub personal access token
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",  # GitHub
        "ya29.a0AfB_byC-x.y",  # a GCP access token has dots, not a JWT
        jwt({"sub": "no-exp"}),
        jwt({"exp": "tomorrow"}),
        jwt({"exp": True}),
        jwt({"exp": 1e13}),
        jwt({"exp": 1_900_000_000}, header={"typ": "JWT"}),  # no alg: not a JWS header
        "a.b.c",
        "eyJ!.eyJ.x",
        "",
    ],
)
def test_anything_else_has_no_expiry(password: str) -> None:
    assert jwt_expiry(password) is None


def test_the_earliest_known_expiry_wins() -> None:
    soon, later = NOW + dt.timedelta(hours=1), NOW + dt.timedelta(hours=12)
    assert earliest(later, None, soon) == soon
    assert earliest(None, None) is None


def _reconciler(password: str, registry: CollectorRegistry, cluster: FakeCluster) -> Reconciler:
    config = parse_config(
        {
            "credentials": [{"name": "acr", "registry": "acme.azurecr.io", "helper": "acr-env", "lifetime": "12h"}],
            "secrets": [{"name": "regcred", "credentials": ["acr"], "namespaces": {"names": ["team"]}}],
        }
    )
    source = FakeSource({"acr": ("00000000-0000-0000-0000-000000000000", password)})
    source.kind = "helper"
    return Reconciler(
        config=config, sources={"helper": source}, cluster=cluster, metrics=Metrics(registry), clock=lambda: NOW
    )


def test_a_token_expiring_before_the_configured_lifetime_sets_the_expiry_and_the_gauge() -> None:
    registry, cluster = CollectorRegistry(), FakeCluster(namespaces={"team": {}})
    exp = NOW + dt.timedelta(hours=3)
    sync = _reconciler(jwt({"exp": int(exp.timestamp())}), registry, cluster)
    result = sync.sync(sync.config.secrets[0], freshness=Freshness.per_run(NOW))
    assert result.result is RunResult.SUCCESS
    assert (
        registry.get_sample_value("syncd_credential_expiry_timestamp_seconds", {"credential": "acr"}) == exp.timestamp()
    )


def test_an_expired_token_is_refused_counted_and_never_written() -> None:
    registry, cluster = CollectorRegistry(), FakeCluster(namespaces={"team": {}})
    token = jwt({"exp": int((NOW - dt.timedelta(minutes=1)).timestamp())})
    sync = _reconciler(token, registry, cluster)
    result = sync.sync(sync.config.secrets[0], freshness=Freshness.per_run(NOW))
    assert result.result is RunResult.FAILURE
    assert result.source_errors == [
        "credential 'acr': registry 'acme.azurecr.io': the token expired at 2026-12-01T11:59:00Z"
    ]
    assert cluster.writes == []
    labels = {"credential": "acr", "source": "helper", "result": "failure"}
    assert registry.get_sample_value("syncd_source_requests_total", labels) == 1
    assert token not in repr(result)
