"""syncd's port of the kubelet's lookup (syncd/registry/kubelet.py) against the kubelet's own code.

Every case runs both: `harness.kubelet.offered` (kubelet-keyring, built from
k8s.io/kubernetes v1.34.4: ParseImageName, MakeDockerKeyring, Lookup) and `syncd.registry.kubelet.offered`.
They must agree on the logins offered, their order, the key each came from, and on failure (a
malformed Secret or image). A corpus of the spellings users write, then Hypothesis-generated
hosts, ports, paths, case and Docker Hub spellings (derandomized: the same examples every run).
And the point of it all: every registry form syncd accepts is written under a key the kubelet
offers for that registry's images.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import kubelet as reference
from syncd.core.errors import SyncdError
from syncd.core.values import RegistryCredential
from syncd.registry import kubelet
from syncd.registry.credential_rules import registry_problem
from syncd.registry.dockerconfig import render
from syncd.registry.keys import canonical_key, key_problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

KEYS = [
    "docker.io", "index.docker.io", "https://index.docker.io/v1/", "https://index.docker.io/v2/",
    "registry-1.docker.io", "Docker.IO", "docker.io/library", "ghcr.io", "https://ghcr.io", "ghcr.io/v2/",
    "GHCR.io", "quay.io/team", "quay.io/team/", "quay.io", "*.example.com", "a.example.com",
    "*.example.com/team", "registry.example.com:5000", "http://registry.example.com:5000/",
    "10.0.0.7:443", "localhost:5000", "[::1]:5000",
]  # fmt: skip
IMAGES = [
    "nginx", "nginx:1.27", "library/nginx:1.27", "docker.io/library/nginx", "index.docker.io/acme/api:2",
    "acme/api@sha256:" + "a" * 64, "ghcr.io/acme/api:1", "quay.io/team/app", "quay.io/team-admin/app",
    "quay.io/other/app", "a.example.com/team/app", "b.example.com/x", "example.com/x",
    "registry.example.com:5000/app:1", "registry.example.com/app", "10.0.0.7:443/x", "localhost:5000/x",
    "localhost/x", "[::1]:5000/x", "Quay.io/team/app", "UPPER/case", "bad image",
]  # fmt: skip


def _raw(key: str, user: str) -> bytes:
    """An auths entry under exactly `key` (render would canonicalize it)."""
    entry = render([RegistryCredential("x.io", user, f"{user}-pw")]).content
    return entry.replace(b'"x.io"', f'"{key}"'.encode())


def _ours(pulls: list[kubelet.PullSecret], image: str) -> list[tuple[str, str, str, str]] | None:
    """syncd's answer; None when syncd finds the pull fails (a malformed Secret or image)."""
    try:
        return [(x.secret, x.key, x.username, x.password) for x in kubelet.offered(pulls, image)]
    except SyncdError:
        return None


def _both(secrets: list[tuple[str, bytes]], images: list[str]) -> None:
    answers = reference.offered(secrets, images)
    pulls = [kubelet.PullSecret(name, kubelet.DOCKERCONFIGJSON, {".dockerconfigjson": data}) for name, data in secrets]
    for image, answer in zip(images, answers, strict=True):
        ours = _ours(pulls, image)
        theirs = None if answer.error else [(x.secret, x.server, x.username, x.password) for x in answer.logins]
        assert ours == theirs, f"{image!r} with {[n for n, _ in secrets]}: kubelet error {answer.error!r}"


@pytest.mark.parametrize("key", KEYS)
def test_one_secret_one_key_every_image(key: str) -> None:
    _both([("s", _raw(key, "u"))], IMAGES)


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(KEYS[:12], 2)))
def test_two_secrets_in_pod_order(first: str, second: str) -> None:
    _both([("one", _raw(first, "a")), ("two", _raw(second, "b"))], IMAGES)


def test_a_malformed_secret_fails_every_image_in_both() -> None:
    _both([("good", _raw("docker.io", "a")), ("bad", b"{not json")], ["nginx", "ghcr.io/a/b"])


_LABEL = st.sampled_from(["a", "b", "example", "io", "com", "docker", "index", "registry-1", "*", "a*", "Quay", "x9"])
_HOST = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_PORT = st.sampled_from(["", ":5000", ":443", ":80"])
_PATH = st.sampled_from(["", "/", "/team", "/team/", "/v1/", "/v2/", "/v2/team", "/library", "/team-admin"])
_SCHEME = st.sampled_from(["", "https://", "http://"])
_KEY = st.builds(lambda s, h, p, path: s + h + p + path, _SCHEME, _HOST, _PORT, _PATH)
_REPO = st.sampled_from(["app", "team/app", "team-admin/app", "library/nginx", "nginx", "acme/api"])
_TAG = st.sampled_from(["", ":1", ":latest", "@sha256:" + "b" * 64])
_IMAGE = st.one_of(
    st.builds(lambda r, t: r + t, _REPO, _TAG),
    st.builds(lambda h, p, r, t: f"{h}{p}/{r}{t}", _HOST.filter(lambda h: "*" not in h), _PORT, _REPO, _TAG),
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    keys=st.lists(st.tuples(_KEY, st.sampled_from(["a", "b", "c"])), min_size=1, max_size=4, unique_by=lambda k: k[0]),
    images=st.lists(_IMAGE, min_size=1, max_size=8),
)
def test_generated_keys_and_images(keys: list[tuple[str, str]], images: list[str]) -> None:
    # One key per Secret: two spellings of one key in one Secret come back in Go's map order.
    _both([(f"s{i}", _raw(key, user)) for i, (key, user) in enumerate(keys)], images)


# --- the keys syncd writes serve every image of their registry ------------------------------------

SERVED = {
    "docker.io": ["nginx", "nginx:1.27", "library/nginx:1.27", "docker.io/library/nginx", "index.docker.io/acme/api:2"],
    "https://index.docker.io/v1/": ["nginx", "acme/api:2"],
    "registry-1.docker.io": ["nginx", "acme/api"],
    "Docker.IO": ["library/nginx"],
    "ghcr.io": ["ghcr.io/acme/api:1", "ghcr.io/acme/api@sha256:" + "c" * 64],
    "https://GHCR.IO/v2/": ["ghcr.io/acme/api"],
    "registry.example.com:5000": ["registry.example.com:5000/app:1"],
    "quay.io/team": ["quay.io/team/app:1", "quay.io/team/sub/app"],
}
NOT_SERVED = {"quay.io/team": ["quay.io/team-admin/app", "quay.io/other/app"], "ghcr.io": ["nginx"]}


@pytest.mark.parametrize("written", list(SERVED))
def test_the_key_syncd_writes_is_offered_by_the_kubelet_for_every_image_of_its_registry(written: str) -> None:
    assert registry_problem(written) is None
    assert key_problem(written) is None
    content = render([RegistryCredential(written, "robot", "pw")]).content
    # Beside a hand-made Secret that competes for Docker Hub, as Pods often have.
    other = _raw("https://index.docker.io/v1/", "other")
    images = SERVED[written] + NOT_SERVED.get(written, [])
    for answer in reference.offered([("syncd", content), ("by-hand", other)], images):
        from_syncd = [x for x in answer.logins if x.secret == "syncd"]
        if answer.image in NOT_SERVED.get(written, []):
            assert from_syncd == [], answer
        else:
            assert [(x.username, x.server) for x in from_syncd] == [("robot", canonical_key(written))], answer
            assert answer.logins[0].secret == "syncd", f"{answer.image}: syncd's login is not tried first"
