"""credential_problems (SPEC §1.2): what makes a fetched credential unusable, said without its value."""

from __future__ import annotations

import pytest

from syncd.core.values import RegistryCredential
from syncd.registry.credential_rules import credential_problems, registry_problem

SENTINEL = "Sentinel-8c1f"  # a part of every bad value below, so that an echoed value is caught


def _credential(**fields: object) -> RegistryCredential:
    values: dict[str, object] = {"registry": "ghcr.io", "username": "robot", "password": "s3cr3t-value", "email": ""}
    return RegistryCredential(**(values | fields))  # type: ignore[arg-type]


def test_a_good_credential_has_no_problems() -> None:
    assert credential_problems(_credential()) == []
    assert credential_problems(_credential(email="robot@example.com", password="p:a:s:s")) == []
    assert credential_problems(_credential(username="$oauthtoken@robot", password="é中文😀\u2028")) == []


CASES = {
    "empty-username": ({"username": ""}, "username is empty"),
    "empty-password": ({"password": ""}, "password is empty"),
    "whitespace-username": ({"username": " \u3000 "}, "username is empty"),
    "whitespace-password": ({"password": "  "}, "password is empty"),
    "none-username": ({"username": None}, "username is NoneType, expected a string"),
    "bytes-password": ({"password": SENTINEL.encode()}, "password is bytes, expected a string"),
    "int-password": ({"password": 8_675_309}, "password is int, expected a string"),
    "dict-password": ({"password": {"value": SENTINEL}}, "password is dict, expected a string"),
    "1-mib-password": ({"password": SENTINEL * (1024 * 1024 // len(SENTINEL) + 1)}, "characters long (limit 65536)"),
    "1-mib-username": ({"username": SENTINEL * (1024 * 1024 // len(SENTINEL) + 1)}, "username is"),
    "newline-in-password": ({"password": f"{SENTINEL}\n"}, "password contains control characters"),
    "nul-in-username": ({"username": f"{SENTINEL}\x00"}, "username contains control characters"),
    "escape-in-password": ({"password": f"\x1b[31m{SENTINEL}"}, "password contains control characters"),
    "delete-in-password": ({"password": f"{SENTINEL}\x7f"}, "password contains control characters"),
    "tab-in-email": ({"email": f"{SENTINEL}\t@example.com"}, "email contains control characters"),
    "lone-surrogate-in-password": ({"password": f"{SENTINEL}\ud800"}, "password is not valid Unicode text"),
    "colon-in-username": ({"username": f"{SENTINEL}:admin"}, "username contains ':'"),
}


@pytest.mark.parametrize(("fields", "expected"), CASES.values(), ids=CASES.keys())
def test_credential_problems_name_the_field_never_the_value(fields: dict[str, object], expected: str) -> None:
    problems = credential_problems(_credential(**fields))
    assert any(expected in problem for problem in problems), problems
    text = " ".join(problems)
    assert SENTINEL not in text
    assert "8675309" not in text


def test_every_problem_is_listed() -> None:
    problems = credential_problems(_credential(registry="bad host", username="", password="\x00"))
    assert len(problems) == 3


BAD_REGISTRIES = {
    "scheme-only": ("https://", "has no host"),
    "empty": ("", "has no host"),
    "port-too-big": ("ghcr.io:99999", "invalid port '99999'"),
    "port-zero": ("ghcr.io:0", "invalid port '0'"),
    "port-empty": ("ghcr.io:", "invalid port ''"),
    "port-not-ascii-digits": ("ghcr.io:\u0665\u0660", "invalid port"),
    "space-in-host": ("bad host", "not a well-formed registry host"),
    "empty-label": ("a..b", "not a well-formed registry host"),
    "leading-hyphen": ("-ghcr.io", "not a well-formed registry host"),
    "underscore": ("my_registry.io", "not a well-formed registry host"),
    "label-over-63": ("x" * 64 + ".io", "not a well-formed registry host"),
    "trailing-newline": ("ghcr.io\n", "not a well-formed registry host"),
    "non-ascii-host": ("régistry.io", "not a well-formed registry host"),
    "bad-path": ("ghcr.io/a b", "has an invalid path"),
    "too-long": ("a" * 2000, "characters long"),
    "not-a-string": (None, "expected a host[:port] string"),
}


@pytest.mark.parametrize(("registry", "expected"), BAD_REGISTRIES.values(), ids=BAD_REGISTRIES.keys())
def test_malformed_registries(registry: str, expected: str) -> None:
    problem = registry_problem(registry)
    assert problem is not None
    assert expected in problem
    assert any(expected in p for p in credential_problems(_credential(registry=registry)))


@pytest.mark.parametrize(
    "registry",
    [
        "ghcr.io",
        "localhost:5000",
        "10.0.0.7:443",
        "[::1]:5000",
        "https://index.docker.io/v1/",
        "http://registry.local:5000",
        "registry.example.com/v2/",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "ghcr.io:65535",
    ],
)
def test_well_formed_registries(registry: str) -> None:
    assert registry_problem(registry) is None
