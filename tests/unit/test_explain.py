"""`syncd explain` over a fake reader: order, credential names, and every way a pull goes wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.cli.explain import Offer, explain
from syncd.config import Config, parse_config
from syncd.core.values import RegistryCredential
from syncd.registry.dockerconfig import render
from syncd.registry.kubelet import DOCKERCONFIGJSON, PullSecret


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
