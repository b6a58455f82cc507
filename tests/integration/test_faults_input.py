"""Bad input end to end through `syncd once` against the real cluster: malformed credentials in
Vault, malformed docker config.json files, invalid registry hosts. Each must fail the run (exit 1,
or 2 for a config problem) with a message naming the credential and the field or key, and write
nothing: Secrets written before stay exactly as they were, a namespace without one stays without.

The parsing and validation rules are unit-tested (tests/unit/test_source_*.py, test_validation.py);
this proves the whole path holds them, and (with test_faults_secrecy.py) that no value leaks.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from tests.integration.conftest import RunSyncd, WriteConfig
from tests.integration.faults import (
    Login,
    add_unmanaged,
    check_secrets,
    error_lines,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    record,
    secret_value,
    snapshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]
BIG = 1024 * 1024


def _big(label: str) -> str:
    """A 1 MiB value; its unique start is registered too, so that a shortened leak is caught."""
    return secret_value(label, value=secret_value(label) + "x" * BIG)


def _control(label: str) -> str:
    return secret_value(label, value=secret_value(label) + "\x07\x00end")


# case -> (the data in Vault, built lazily so that values are registered per test; expected message)
VAULT_CASES: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "password missing": (lambda: {"username": "robot"}, "field 'password' is missing at secret/{path}"),
    "username missing": (
        lambda: {"password": secret_value("input-no-user")},
        "field 'username' is missing at secret/{path}",
    ),
    "password a number": (
        lambda: {"username": "robot", "password": 123456789},
        "field 'password' at secret/{path} is a int, expected a string",
    ),
    "password a map": (
        lambda: {"username": "robot", "password": {"value": secret_value("input-nested")}},
        "field 'password' at secret/{path} is a dict, expected a string",
    ),
    "email a list": (
        lambda: {"username": "robot", "password": secret_value("input-email"), "email": ["a@example.com"]},
        "field 'email' at secret/{path} is a list, expected a string",
    ),
    "password empty": (lambda: {"username": "robot", "password": ""}, "registry 'ghcr.io': password is empty"),
    "username blank": (
        lambda: {"username": "   ", "password": secret_value("input-blank-user", username="   ")},
        "registry 'ghcr.io': username is empty",
    ),
    "password of 1 MiB": (
        lambda: {"username": "robot", "password": _big("input-1mib")},
        f"registry 'ghcr.io': password is {len('input-1mib-') + 32 + BIG} characters long (limit 65536)",
    ),
    "password with control characters": (
        lambda: {"username": "robot", "password": _control("input-control")},
        "registry 'ghcr.io': password contains control characters",
    ),
    "username with a newline": (
        lambda: {"username": "robot\nroot", "password": secret_value("input-newline", username="robot\nroot")},
        "registry 'ghcr.io': username contains control characters",
    ),
    "username with a colon": (
        lambda: {"username": "ro:bot", "password": secret_value("input-colon", username="ro:bot")},
        "registry 'ghcr.io': username contains ':'",
    ),
}


def _auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


# case -> (the config.json text; expected message after "<file>: " or the whole message when it starts with "!")
DOCKER_CASES: dict[str, tuple[Callable[[], str], str]] = {
    "not JSON": (lambda: '{"auths": {"quay.io": {"auth": "', "not a JSON docker config"),
    "a list at the top": (lambda: "[]", "expected a JSON object at the top level"),
    "auths a list": (lambda: '{"auths": []}', "`auths` is not a JSON object"),
    "credsStore a number": (lambda: '{"credsStore": 7}', "`credsStore` is not a JSON string"),
    "an auths entry a string": (
        lambda: json.dumps({"auths": {"quay.io": secret_value("input-entry-string")}}),
        "auths['quay.io'] is not a JSON object",
    ),
    "auth a number": (lambda: '{"auths": {"quay.io": {"auth": 42}}}', "auths['quay.io'].auth is not a string"),
    "auth not base64": (
        lambda: json.dumps({"auths": {"quay.io": {"auth": "%%" + secret_value("input-b64")}}}),
        "auths['quay.io'].auth is not base64 of UTF-8 text",
    ),
    "auth without a colon": (
        lambda: json.dumps(
            {"auths": {"quay.io": {"auth": base64.b64encode(secret_value("input-no-colon").encode()).decode()}}}
        ),
        "auths['quay.io'].auth is not base64 of `username:password`",
    ),
    "password a number": (
        lambda: json.dumps({"auths": {"quay.io": {"username": "bot", "password": 5}}}),
        "auths['quay.io'].password is not a string",
    ),
    "a credHelpers entry a list": (
        lambda: json.dumps({"credHelpers": {"quay.io": ["pass"]}}),
        "credHelpers['quay.io'] is not a string",
    ),
    "password with control characters": (
        lambda: json.dumps({"auths": {"quay.io": {"auth": _auth("bot", _control("input-file-control"))}}}),
        "!registry 'quay.io': password contains control characters",
    ),
    "only an invalid registry host": (
        lambda: json.dumps({"auths": {"quay io!:99999": {"auth": _auth("bot", secret_value("input-bad-host"))}}}),
        "has no credentials for quay.io",
    ),
}


def _prepare(
    core_v1: client.CoreV1Api, make_namespaces: Callable[..., list[str]], prefix: str
) -> tuple[list[str], list[str]]:
    """Two namespaces that will get the Secret before the bad input, and one made after (and unmanaged Secrets)."""
    early = make_namespaces(f"{prefix}-a", f"{prefix}-b")
    add_unmanaged(core_v1, early)
    return early, [*early, f"{prefix}-late"]


def _unchanged_after_failure(
    run_syncd: RunSyncd,
    config: Path,
    core_v1: client.CoreV1Api,
    make_namespaces: Callable[..., list[str]],
    everything: list[str],
    request: pytest.FixtureRequest,
) -> str:
    """Run once with the bad input; the whole cluster state of the test must stay as it was."""
    make_namespaces(everything[-1])
    before = snapshot(core_v1, "regcred", everything), snapshot(core_v1, "not-ours", everything[:-1])
    run = run_syncd("once", config=config)
    record(request.node.nodeid, run.out, run.err)
    assert run.code == 1, run.out
    assert (snapshot(core_v1, "regcred", everything), snapshot(core_v1, "not-ours", everything[:-1])) == before
    assert before[0][everything[-1]][0] == "absent"  # nothing written where there was nothing
    [error] = error_lines(run.err)  # one line, naming the credential
    assert error["message"].startswith("sync failed: credential "), error
    return run.out


@pytest.mark.parametrize("case", list(VAULT_CASES))
def test_malformed_credential_in_vault_fails_naming_credential_and_field_and_writes_nothing(
    case: str,
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    request: pytest.FixtureRequest,
) -> None:
    path = f"input/{prefix}"
    good = Login("robot", secret_value("input-good"))
    kv = vault_client.secrets.kv.v2
    kv.create_or_update_secret(path, secret={"username": good.username, "password": good.password})
    early, everything = _prepare(core_v1, make_namespaces, prefix)
    config = write_config(
        {
            "vault": {},
            "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}}],
            "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
        }
    )
    assert run_syncd("once", config=config).code == 0
    check_secrets(core_v1, "regcred", early, {"ghcr.io": good})

    data, expected = VAULT_CASES[case]
    kv.create_or_update_secret(path, secret=data())
    out = _unchanged_after_failure(run_syncd, config, core_v1, make_namespaces, everything, request)
    assert f"  error: credential 'robot': {expected.format(path=path)}" in out.splitlines(), out

    # Fixed in Vault: the next run writes where the Secret was missing, and nothing else.
    kv.create_or_update_secret(path, secret={"username": good.username, "password": good.password})
    assert run_syncd("once", config=config).out.strip() == "regcred: success (1 created, 2 unchanged)"
    check_secrets(core_v1, "regcred", everything, {"ghcr.io": good})


@pytest.mark.parametrize("case", list(DOCKER_CASES))
def test_malformed_docker_config_fails_naming_credential_file_and_key_and_writes_nothing(
    case: str,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    request: pytest.FixtureRequest,
) -> None:
    good = Login("bot", secret_value("input-file-good", username="bot"))
    docker_config = tmp_path / "config.json"
    docker_config.write_text(json.dumps({"auths": {"https://quay.io": {"auth": _auth(good.username, good.password)}}}))
    early, everything = _prepare(core_v1, make_namespaces, prefix)
    config = write_config(
        {
            "credentials": [{"name": "files", "docker_config": str(docker_config), "registries": ["quay.io"]}],
            "secrets": [{"name": "regcred", "credentials": ["files"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
        }
    )
    assert run_syncd("once", config=config).code == 0
    check_secrets(core_v1, "regcred", early, {"quay.io": good})

    text, expected = DOCKER_CASES[case]
    docker_config.write_text(text())
    out = _unchanged_after_failure(run_syncd, config, core_v1, make_namespaces, everything, request)
    message = expected[1:] if expected.startswith("!") else f"{docker_config}: {expected}"
    if case == "only an invalid registry host":
        message = f"{docker_config} {expected}"
    assert f"  error: credential 'files': {message}" in out.splitlines(), out

    docker_config.write_text(json.dumps({"auths": {"quay.io": {"auth": _auth(good.username, good.password)}}}))
    assert run_syncd("once", config=config).out.strip() == "regcred: success (1 created, 2 unchanged)"
    check_secrets(core_v1, "regcred", everything, {"quay.io": good})


def test_one_bad_credential_holds_every_spec_using_it_and_no_other(
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    request: pytest.FixtureRequest,
) -> None:
    """A Secret merging a good and a bad credential is not written at all (not half of it); a spec
    using only the good one is written as usual."""
    kv = vault_client.secrets.kv.v2
    good, other = Login("robot", secret_value("input-merge-good")), Login("robot", secret_value("input-merge-other"))
    kv.create_or_update_secret(f"input/{prefix}/good", secret={"username": "robot", "password": good.password})
    kv.create_or_update_secret(f"input/{prefix}/other", secret={"username": "robot", "password": other.password})
    early, everything = _prepare(core_v1, make_namespaces, prefix)
    selection = {"patterns": [f"{prefix}-*"]}
    config = write_config(
        {
            "vault": {},
            "credentials": [
                {"name": "good", "registry": "ghcr.io", "vault": {"kv": 2, "path": f"input/{prefix}/good"}},
                {"name": "other", "registry": "quay.io", "vault": {"kv": 2, "path": f"input/{prefix}/other"}},
            ],
            "secrets": [
                {"name": "regcred", "credentials": ["good", "other"], "namespaces": selection},
                {"name": "solo", "credentials": ["good"], "namespaces": selection},
            ],
        }
    )
    assert run_syncd("once", config=config).code == 0
    check_secrets(core_v1, "regcred", early, {"ghcr.io": good, "quay.io": other})

    kv.create_or_update_secret(f"input/{prefix}/other", secret={"username": "robot", "password": ""})
    make_namespaces(everything[-1])
    before = snapshot(core_v1, "regcred", everything)
    run = run_syncd("once", config=config)
    record(request.node.nodeid, run.out, run.err)
    assert run.code == 1
    assert snapshot(core_v1, "regcred", everything) == before
    assert "  error: credential 'other': registry 'quay.io': password is empty" in run.out.splitlines()
    assert "solo: success (1 created, 2 unchanged)" in run.out.splitlines()
    check_secrets(core_v1, "solo", everything, {"ghcr.io": good})


@pytest.mark.parametrize(
    ("credential", "key"),
    [
        ({"name": "files", "docker_config": "/dev/null", "registries": ["quay io!"]}, "credentials[0].registries"),
        ({"name": "robot", "registry": "https://ghcr.io:99999", "vault": {"path": "x"}}, "credentials[0].registry"),
    ],
    ids=["docker_config registries", "vault registry"],
)
def test_an_invalid_registry_host_is_a_config_error_and_nothing_is_written(
    credential: dict[str, Any],
    key: str,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    request: pytest.FixtureRequest,
) -> None:
    namespaces = make_namespaces(f"{prefix}-a")
    config = write_config(
        {
            "vault": {},
            "credentials": [credential],
            "secrets": [{"name": "regcred", "credentials": [credential["name"]], "namespaces": {"names": namespaces}}],
        }
    )
    run = run_syncd("once", config=config)
    record(request.node.nodeid, run.out, run.err)
    assert run.code == 2
    assert f"  {key}: " in run.err, run.err
    assert "registry host" in run.err or "port" in run.err, run.err
    assert snapshot(core_v1, "regcred", namespaces)[namespaces[0]][0] == "absent"
