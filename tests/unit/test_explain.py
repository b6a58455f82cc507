"""`syncd explain` over a fake reader: order, credential names, and every way a pull goes wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from syncd.cli import explain as explain_module
from syncd.cli.explain import ACCEPTED, REFUSED, UNAVAILABLE, CheckLogin, Offer, check_login, explain
from syncd.cli.output import explain_json, explain_table
from syncd.config import Config, parse_config
from syncd.core.errors import InvalidCredential, SourceUnavailable
from syncd.core.values import RegistryCredential
from syncd.registry.dockerconfig import render
from syncd.registry.kubelet import DOCKERCONFIGJSON, Login, PullSecret
from syncd.registry.login import VerificationFailed


@dataclass
class Reader:
    accounts: dict[str, list[str]] = field(default_factory=dict)
    secrets: dict[str, tuple[PullSecret, str | None]] = field(default_factory=dict)

    def pull_secret_names(self, namespace: str, service_account: str) -> list[str] | None:
        return self.accounts.get(service_account)

    def pull_secret(self, namespace: str, name: str, instance: str) -> tuple[PullSecret, str | None] | None:
        return self.secrets.get(name)


CONFIG: Config = parse_config(
    {
        "credentials": [
            {"name": "hub", "registry": "docker.io", "helper": "pass"},
            {"name": "team", "registry": "quay.io/team", "helper": "pass"},
        ],
        "secrets": [{"name": "regcred", "credentials": ["hub", "team"], "namespaces": {"names": ["a"]}}],
    }
)


def _secret(name: str, *registries: str) -> PullSecret:
    content = render([RegistryCredential(r, "robot", "pw") for r in registries]).content
    return PullSecret(name, DOCKERCONFIGJSON, {".dockerconfigjson": content})


def test_the_first_login_is_syncds_credential_then_the_others_in_order() -> None:
    reader = Reader(
        {"default": ["regcred", "by-hand"]},
        {
            "regcred": (_secret("regcred", "docker.io", "quay.io/team"), "regcred"),
            "by-hand": (_secret("by-hand", "docker.io"), None),
        },
    )
    for image in ("nginx", "library/nginx:1.27", "docker.io/library/nginx", "index.docker.io/acme/api:2"):
        result = explain(reader, CONFIG, namespace="a", image=image, service_account="default")
        assert result.ok, image
        assert result.offers == [Offer("regcred", "docker.io", "hub"), Offer("by-hand", "docker.io", None)]
    team = explain(reader, CONFIG, namespace="a", image="quay.io/team/app:1", service_account="default")
    assert team.offers == [Offer("regcred", "quay.io/team/", "team")]


def test_an_image_no_key_matches_is_an_anonymous_pull() -> None:
    reader = Reader({"default": ["regcred"]}, {"regcred": (_secret("regcred", "docker.io"), "regcred")})
    result = explain(reader, CONFIG, namespace="a", image="quay.io/team-admin/app", service_account="default")
    assert not result.ok
    assert result.offers == []
    assert result.problems == [
        "no listed Secret has a key the kubelet matches to 'quay.io/team-admin/app': the pull is anonymous"
    ]


def test_a_missing_secret_is_reported_and_the_others_still_count() -> None:
    reader = Reader({"default": ["gone", "regcred"]}, {"regcred": (_secret("regcred", "docker.io"), "regcred")})
    result = explain(reader, CONFIG, namespace="a", image="nginx", service_account="default")
    assert result.offers == [Offer("regcred", "docker.io", "hub")]
    assert not result.ok
    assert result.problems == [
        "Secret a/gone is listed but missing: the kubelet skips it "
        "(Event FailedToRetrieveImagePullSecret on every pod start)"
    ]


def test_a_malformed_secret_fails_every_pull_of_the_pod() -> None:
    broken = PullSecret("broken", DOCKERCONFIGJSON, {".dockerconfigjson": b"{not json"})
    reader = Reader(
        {"default": ["regcred", "broken"]},
        {"regcred": (_secret("regcred", "docker.io"), "regcred"), "broken": (broken, None)},
    )
    result = explain(reader, CONFIG, namespace="a", image="nginx", service_account="default")
    assert result.offers == []
    assert result.problems == [
        "Secret 'broken' is not valid JSON: the kubelet then offers no login at all, for every image of the Pod"
    ]


def test_a_missing_service_account_is_a_problem() -> None:
    result = explain(Reader(), CONFIG, namespace="a", image="nginx", service_account="builder")
    assert result.problems == ["ServiceAccount a/builder does not exist"]


TWO_LOGINS = Reader(
    {"default": ["old-hub", "regcred"]},
    {"old-hub": (_secret("old-hub", "docker.io"), None), "regcred": (_secret("regcred", "docker.io"), "regcred")},
)


def _answers(*answers: str) -> tuple[CheckLogin, list[str]]:
    """A registry that answers the logins in turn; the secrets it was asked for, in order."""
    asked: list[str] = []

    def check(login: Login) -> str:
        asked.append(login.secret)
        return answers[len(asked) - 1]

    return check, asked


def test_verify_stops_at_the_first_login_the_registry_accepts_as_the_runtime_does() -> None:
    check, asked = _answers(REFUSED, ACCEPTED)
    result = explain(TWO_LOGINS, CONFIG, namespace="a", image="nginx", service_account="default", check=check)
    assert result.ok
    assert asked == ["old-hub", "regcred"]
    assert [o.login for o in result.offers] == [REFUSED, ACCEPTED]
    assert "LOGIN" in explain_table(result)
    assert [o["login"] for o in json.loads(explain_json(result))["offers"]] == [REFUSED, ACCEPTED]

    check, asked = _answers(ACCEPTED)
    first = explain(TWO_LOGINS, CONFIG, namespace="a", image="nginx", service_account="default", check=check)
    assert asked == ["old-hub"]
    assert [o.login for o in first.offers] == [ACCEPTED, None]
    assert "not tried" in explain_table(first)


def test_verify_fails_when_every_login_is_refused_and_cannot_judge_an_unanswered_one() -> None:
    check, _ = _answers(REFUSED, REFUSED)
    refused = explain(TWO_LOGINS, CONFIG, namespace="a", image="nginx", service_account="default", check=check)
    assert not refused.ok
    assert refused.problems == ["the registry refused every offered login: the kubelet's pull fails (ErrImagePull)"]
    check, _ = _answers(REFUSED, UNAVAILABLE)
    silent = explain(TWO_LOGINS, CONFIG, namespace="a", image="nginx", service_account="default", check=check)
    assert not silent.ok
    assert silent.problems == ["the registry did not answer for every offered login: the pull cannot be judged"]


def test_without_verify_the_output_has_no_login_column() -> None:
    result = explain(TWO_LOGINS, CONFIG, namespace="a", image="nginx", service_account="default")
    assert "LOGIN" not in explain_table(result)
    assert all("login" not in offer for offer in json.loads(explain_json(result))["offers"])


@pytest.mark.parametrize(
    ("raised", "answer"),
    [
        (None, ACCEPTED),
        (VerificationFailed("regcred", "401"), REFUSED),
        (SourceUnavailable("regcred", "connection refused"), UNAVAILABLE),
        (InvalidCredential("regcred", "not a registry address"), UNAVAILABLE),
    ],
)
def test_check_login_asks_the_registry_of_the_key_with_the_secrets_login(
    monkeypatch: pytest.MonkeyPatch, raised: Exception | None, answer: str
) -> None:
    asked: list[tuple[str, RegistryCredential]] = []

    def verify(name: str, login: RegistryCredential) -> None:
        asked.append((name, login))
        if raised is not None:
            raise raised

    monkeypatch.setattr(explain_module, "verify_login", verify)
    assert check_login(Login("regcred", "127.0.0.1:5000", "robot", "pw")) == answer
    assert asked == [("regcred", RegistryCredential("127.0.0.1:5000", "robot", "pw"))]
