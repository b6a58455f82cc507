"""DockerConfigSource: config.json files resolved as docker does, helpers as real scripts on PATH."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from syncd.config import DockerConfigCredential
from syncd.core.errors import CredentialNotFound, InvalidCredential, SourceError, SourceUnavailable
from syncd.core.values import FetchedCredential
from syncd.sources.docker_config import DockerConfigSource
from tests.unit.test_source_helper import write_helper

SECRET = "s3cr3t-Vb7q"
NOT_FOUND = "echo 'credentials not found in native keychain'; exit 1"


def _auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _answer(username: str, secret: str) -> str:
    return f"""printf '%s' '{{"ServerURL":"x","Username":"{username}","Secret":"{secret}"}}'"""


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ['PATH']}")
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "config.json"


def _fetch(config_file: Path, content: Any, *registries: str, **overrides: object) -> FetchedCredential:
    if content is not None:
        config_file.write_text(content if isinstance(content, str) else json.dumps(content))
    fields: dict[str, object] = {"name": "ci-robot", "docker_config": str(config_file), "registries": list(registries)}
    return DockerConfigSource().fetch(DockerConfigCredential.model_validate(fields | overrides))


def _logins(fetched: FetchedCredential) -> list[tuple[str, str, str]]:
    return [(e.registry, e.username, e.password) for e in fetched.entries]


def _assert_safe(error: pytest.ExceptionInfo[SourceError], config_file: Path) -> None:
    assert "ci-robot" in str(error.value)
    assert str(config_file) in str(error.value)
    assert SECRET not in str(error.value)
    assert error.value.__context__ is None or SECRET not in repr(error.value.__context__)


def test_auths_entry_with_auth_field(config_file: Path) -> None:
    fetched = _fetch(config_file, {"auths": {"quay.io": {"auth": _auth("robot", SECRET)}}}, "quay.io")
    assert fetched.name == "ci-robot"
    assert fetched.source == "docker_config"
    assert fetched.expires_at is None
    assert _logins(fetched) == [("quay.io", "robot", SECRET)]
    assert SECRET not in repr(fetched)


def test_auths_entry_with_username_password_and_email(config_file: Path) -> None:
    entry = {"username": "robot", "password": SECRET, "email": "ops@example.com"}
    fetched = _fetch(config_file, {"auths": {"quay.io": entry}}, "quay.io")
    assert _logins(fetched) == [("quay.io", "robot", SECRET)]
    assert fetched.entries[0].email == "ops@example.com"


def test_password_may_contain_colons(config_file: Path) -> None:
    fetched = _fetch(config_file, {"auths": {"quay.io": {"auth": _auth("robot", f"a:{SECRET}")}}}, "quay.io")
    assert _logins(fetched) == [("quay.io", "robot", f"a:{SECRET}")]


def test_one_entry_per_registry_in_the_configured_order(config_file: Path) -> None:
    auths = {"b.example": {"auth": _auth("b", "pb")}, "a.example": {"auth": _auth("a", "pa")}}
    fetched = _fetch(config_file, {"auths": auths}, "b.example", "a.example")
    assert _logins(fetched) == [("b.example", "b", "pb"), ("a.example", "a", "pa")]


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("https://quay.io", "quay.io"),
        ("http://registry.local:5000/v2/", "registry.local:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("docker.io", "https://index.docker.io/v1/"),
        ("Quay.IO", "quay.io"),
    ],
)
def test_auths_keys_match_by_host(config_file: Path, key: str, registry: str) -> None:
    fetched = _fetch(config_file, {"auths": {key: {"auth": _auth("robot", SECRET)}}}, registry)
    assert _logins(fetched) == [(registry, "robot", SECRET)]  # written under the configured name


def test_exact_key_wins_over_a_key_with_the_same_host(config_file: Path) -> None:
    auths = {"https://quay.io": {"auth": _auth("old", "p1")}, "quay.io": {"auth": _auth("new", "p2")}}
    assert _logins(_fetch(config_file, {"auths": auths}, "quay.io")) == [("quay.io", "new", "p2")]


def test_identity_token_becomes_the_password_beside_its_username(config_file: Path) -> None:
    # What `az acr login` writes: the username (a null GUID) in `auth` with an empty password.
    entry = {"auth": _auth("00000000-0000-0000-0000-000000000000", ""), "identitytoken": SECRET}
    fetched = _fetch(config_file, {"auths": {"r.azurecr.io": entry}}, "r.azurecr.io")
    assert _logins(fetched) == [("r.azurecr.io", "00000000-0000-0000-0000-000000000000", SECRET)]


def test_identity_token_without_username_uses_the_token_username(config_file: Path) -> None:
    fetched = _fetch(config_file, {"auths": {"r.example": {"identitytoken": SECRET}}}, "r.example")
    assert _logins(fetched) == [("r.example", "<token>", SECRET)]


def test_lifetime_sets_the_expiry(config_file: Path) -> None:
    fetched = _fetch(config_file, {"auths": {"quay.io": {"auth": _auth("u", "p")}}}, "quay.io", lifetime="1h")
    assert fetched.expires_at is not None


@pytest.mark.parametrize(
    "content",
    [
        {"auths": {"ghcr.io": {"auth": _auth("u", "p")}}},
        {"auths": {"quay.io": {}}},  # what docker leaves beside a credsStore
        {},
    ],
)
def test_registry_not_in_the_file_is_not_found(config_file: Path, content: Any) -> None:
    with pytest.raises(CredentialNotFound, match=r"has no credentials for quay\.io") as error:
        _fetch(config_file, content, "quay.io")
    _assert_safe(error, config_file)


def test_missing_file_is_unavailable_and_names_the_path(config_file: Path) -> None:
    with pytest.raises(SourceUnavailable, match="cannot read docker config") as error:
        _fetch(config_file, None, "quay.io")
    _assert_safe(error, config_file)


def test_unreadable_file_is_unavailable(config_file: Path) -> None:
    config_file.mkdir()  # reading a directory fails whoever we run as, root included
    with pytest.raises(SourceUnavailable) as error:
        _fetch(config_file, None, "quay.io")
    _assert_safe(error, config_file)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f'{{"auths": {{"quay.io": {{"auth": "{SECRET}"', "not a JSON docker config"),
        (b"\xff\xfe" + SECRET.encode(), "not a JSON docker config"),
        ([SECRET], "expected a JSON object"),
        ({"auths": [SECRET]}, "`auths` is not a JSON object"),
        ({"credsStore": 1}, "`credsStore` is not a JSON string"),
        ({"credHelpers": "pass"}, "`credHelpers` is not a JSON object"),
        ({"credHelpers": {"quay.io": 1}}, "credHelpers['quay.io'] is not a string"),
        ({"auths": {"quay.io": SECRET}}, "auths['quay.io'] is not a JSON object"),
        ({"auths": {"quay.io": {"auth": f"!{SECRET}!"}}}, "auths['quay.io'].auth is not base64"),
        ({"auths": {"quay.io": {"auth": base64.b64encode(b"\xff" + SECRET.encode()).decode()}}}, "UTF-8"),
        ({"auths": {"quay.io": {"auth": base64.b64encode(SECRET.encode()).decode()}}}, "`username:password`"),
        ({"auths": {"quay.io": {"username": "u", "password": [SECRET]}}}, "auths['quay.io'].password is not a string"),
    ],
)
def test_malformed_file_is_invalid_and_never_quoted(config_file: Path, content: Any, message: str) -> None:
    if isinstance(content, bytes):
        config_file.write_bytes(content)
        content = None
    with pytest.raises(InvalidCredential, match=re.escape(message)) as error:
        _fetch(config_file, content, "quay.io")
    _assert_safe(error, config_file)
    assert error.value.__context__ is None  # decode errors keep the input: none is attached


def test_cred_helpers_entry_runs_that_helper_with_dockers_server_url(bin_dir: Path, config_file: Path) -> None:
    script = write_helper(bin_dir, "fake", _answer("robot", SECRET))
    content = {"auths": {"quay.io": {"email": "ops@example.com"}}, "credHelpers": {"quay.io": "fake"}}
    fetched = _fetch(config_file, content, "https://quay.io")
    assert _logins(fetched) == [("https://quay.io", "robot", SECRET)]
    assert Path(f"{script}.stdin").read_text() == "quay.io"  # host[:port], as docker asks helpers


def test_docker_hub_is_asked_for_by_its_legacy_url(bin_dir: Path, config_file: Path) -> None:
    script = write_helper(bin_dir, "fake", _answer("robot", SECRET))
    _fetch(config_file, {"credsStore": "fake"}, "docker.io")
    assert Path(f"{script}.stdin").read_text() == "https://index.docker.io/v1/"


def test_creds_store_is_used_for_every_registry(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "fake", _answer("robot", SECRET))
    fetched = _fetch(config_file, {"credsStore": "fake"}, "quay.io", "ghcr.io")
    assert _logins(fetched) == [("quay.io", "robot", SECRET), ("ghcr.io", "robot", SECRET)]


def test_cred_helpers_win_over_creds_store(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "store", _answer("from-store", "p1"))
    write_helper(bin_dir, "special", _answer("from-special", "p2"))
    content = {"credsStore": "store", "credHelpers": {"quay.io": "special"}}
    fetched = _fetch(config_file, content, "quay.io", "ghcr.io")
    assert _logins(fetched) == [("quay.io", "from-special", "p2"), ("ghcr.io", "from-store", "p1")]


def test_creds_store_not_found_falls_back_to_auths(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "fake", NOT_FOUND)
    content = {"credsStore": "fake", "auths": {"quay.io": {"auth": _auth("robot", SECRET)}}}
    assert _logins(_fetch(config_file, content, "quay.io")) == [("quay.io", "robot", SECRET)]


def test_creds_store_not_found_and_no_auths_is_not_found(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "fake", NOT_FOUND)
    with pytest.raises(CredentialNotFound, match=r"credsStore: docker-credential-fake has no credentials") as error:
        _fetch(config_file, {"credsStore": "fake", "auths": {"quay.io": {}}}, "quay.io")
    _assert_safe(error, config_file)


def test_cred_helpers_not_found_does_not_fall_back(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "fake", NOT_FOUND)
    content = {"credHelpers": {"quay.io": "fake"}, "auths": {"quay.io": {"auth": _auth("robot", SECRET)}}}
    with pytest.raises(CredentialNotFound, match=r"credHelpers\['quay.io'\]") as error:
        _fetch(config_file, content, "quay.io")
    _assert_safe(error, config_file)


def test_empty_cred_helper_means_auths(config_file: Path) -> None:
    content = {"credsStore": "absent", "credHelpers": {"quay.io": ""}, "auths": {"quay.io": {"auth": _auth("u", "p")}}}
    assert _logins(_fetch(config_file, content, "quay.io")) == [("quay.io", "u", "p")]


def test_helper_failure_keeps_its_class_and_names_file_and_key(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "fake", "echo 'keychain locked'; exit 1")
    with pytest.raises(SourceUnavailable, match=r"credHelpers\['quay.io'\]: .*status 1: keychain locked") as error:
        _fetch(config_file, {"credHelpers": {"quay.io": "fake"}}, "quay.io")
    _assert_safe(error, config_file)


def test_missing_helper_is_unavailable(bin_dir: Path, config_file: Path) -> None:
    with pytest.raises(SourceUnavailable, match="docker-credential-absent is not on PATH"):
        _fetch(config_file, {"credsStore": "absent"}, "quay.io")


def test_helper_name_from_the_file_cannot_be_a_path(config_file: Path) -> None:
    with pytest.raises(InvalidCredential, match="not a credential helper name"):
        _fetch(config_file, {"credsStore": "../../bin/sh"}, "quay.io")


def test_helper_timeout_applies(bin_dir: Path, config_file: Path) -> None:
    write_helper(bin_dir, "fake", "sleep 60")
    with pytest.raises(SourceUnavailable, match="did not answer in time"):
        _fetch(config_file, {"credsStore": "fake"}, "quay.io", helper_timeout="300ms")
