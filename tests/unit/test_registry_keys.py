"""Registry keys the kubelet serves: every way users write a registry, and the images it must serve."""

from __future__ import annotations

import pytest

from syncd.config import parse_config
from syncd.core.errors import ConfigError
from syncd.core.values import RegistryCredential
from syncd.registry.dockerconfig import render
from syncd.registry.keys import DOCKER_HUB_KEY, canonical_key, key_problem
from syncd.registry.kubelet import DOCKERCONFIGJSON, PullSecret, offered

HUB_IMAGES = ["nginx", "nginx:1.27", "library/nginx:1.27", "docker.io/library/nginx", "index.docker.io/acme/api:2"]
CASES = [
    # (written, key, images it must serve, images it must not)
    ("docker.io", DOCKER_HUB_KEY, HUB_IMAGES, ["quay.io/a/b"]),
    ("https://index.docker.io/v1/", DOCKER_HUB_KEY, HUB_IMAGES, ["ghcr.io/a/b", "quay.io/library/nginx"]),
    ("index.docker.io", DOCKER_HUB_KEY, HUB_IMAGES, []),
    ("registry-1.docker.io", DOCKER_HUB_KEY, HUB_IMAGES, []),
    ("https://registry.hub.docker.com/v2/", DOCKER_HUB_KEY, HUB_IMAGES, []),
    ("Docker.IO", DOCKER_HUB_KEY, HUB_IMAGES, []),
    ("ghcr.io", "ghcr.io", ["ghcr.io/acme/api:1", "ghcr.io/acme/api@sha256:" + "a" * 64], ["nginx", "ghcr.io:5000/a"]),
    ("https://ghcr.io", "ghcr.io", ["ghcr.io/acme/api"], []),
    ("ghcr.io/v2/", "ghcr.io", ["ghcr.io/acme/api"], []),
    ("GHCR.IO", "ghcr.io", ["ghcr.io/acme/api"], []),
    (
        "registry.example.com:5000",
        "registry.example.com:5000",
        ["registry.example.com:5000/app:1"],
        ["registry.example.com/app"],
    ),
    ("http://registry.example.com:5000/", "registry.example.com:5000", ["registry.example.com:5000/app"], []),
    ("quay.io/team", "quay.io/team/", ["quay.io/team/app:1"], ["quay.io/team-admin/app", "quay.io/other/app"]),
    ("https://quay.io/v2/team/", "quay.io/team/", ["quay.io/team/app"], ["quay.io/teamx/app"]),
]


@pytest.mark.parametrize(("written", "key", "serves", "not_served"), CASES, ids=[c[0] for c in CASES])
def test_the_key_written_is_offered_by_the_kubelet_for_every_image_of_that_registry(
    written: str, key: str, serves: list[str], not_served: list[str]
) -> None:
    assert key_problem(written) is None
    assert canonical_key(written) == key
    content = render([RegistryCredential(written, "robot", "pw")]).content
    secrets = [PullSecret("regcred", DOCKERCONFIGJSON, {".dockerconfigjson": content})]
    for image in serves:
        assert [login.username for login in offered(secrets, image)] == ["robot"], image
    for image in not_served:
        assert offered(secrets, image) == [], image


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("*.example.com", "wildcard registries are not written"),
        ("registry-?.example.com", "wildcard"),
        ("docker.io/acme", "Docker Hub login limited to a path"),
        ("https://index.docker.io/v1/acme", "Docker Hub login limited to a path"),
    ],
)
def test_keys_the_kubelet_cannot_serve_safely_are_refused_with_a_reason(written: str, fragment: str) -> None:
    problem = key_problem(written)
    assert problem is not None
    assert fragment in problem
    assert repr(written) in problem


def _config(*registries: str) -> dict[str, object]:
    credentials = [{"name": f"c{i}", "registry": r, "helper": "pass"} for i, r in enumerate(registries)]
    names = [c["name"] for c in credentials]
    return {
        "credentials": credentials,
        "secrets": [{"name": "s", "credentials": names, "namespaces": {"names": ["a"]}}],
    }


def test_check_config_names_the_key_path_of_a_registry_the_kubelet_cannot_serve() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_config("ghcr.io", "*.example.com"))
    assert [str(p) for p in refused.value.problems] == [
        "credentials[1].registry: '*.example.com': wildcard registries are not written: the kubelet matches them "
        "label by label (and `*.example.com` not `example.com`), docker and most image clients not at all; "
        "list each registry"
    ]


def test_two_spellings_of_docker_hub_in_one_secret_are_one_registry() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_config("docker.io", "https://index.docker.io/v1/"))
    [problem] = refused.value.problems
    assert problem.path == "secrets[0].credentials[1]"
    assert "registry 'docker.io' is also given by credential 'c0'" in problem.message
