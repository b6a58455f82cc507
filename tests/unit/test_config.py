"""`syncd check-config` and syncd.config: every problem reported with its key path, defaults as SPEC §3."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.cli.commands import main
from syncd.config import Config, HelperCredential, VaultCredential, load_config, parse_config
from syncd.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "syncd.example.yaml"
DEFAULT_API_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

VALID: dict[str, Any] = {
    "vault": {"address": "https://vault.vault.svc:8200", "auth": {"method": "kubernetes", "role": "syncd"}},
    "credentials": [
        {"name": "ghcr", "registry": "ghcr.io", "vault": {"kv": 2, "path": "registry/ghcr"}},
        {"name": "ecr", "registry": "1234.dkr.ecr.eu-west-1.amazonaws.com", "helper": "ecr-login", "lifetime": "12h"},
        {"name": "file", "docker_config": "/etc/syncd/docker/config.json", "registries": ["quay.io"]},
    ],
    "secrets": [
        {"name": "regcred", "credentials": ["ghcr", "ecr"], "namespaces": {"names": ["payments"]}},
        {"name": "quay", "credentials": ["file"], "namespaces": {"patterns": ["team-*"]}},
    ],
}
Edit = Callable[[dict[str, Any]], None]


def _set(*path: str | int, value: object) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        node: Any = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


def _delete(*path: str | int) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        node: Any = config
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        for one in edits:
            one(config)

    return edit


def _yaml(edit: Edit) -> bytes:
    config = copy.deepcopy(VALID)
    edit(config)
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True).encode()


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# (id, file content or an edit of VALID, key path, message fragment). An empty key path means a
# problem of the whole file; then only the fragment is checked.
MALFORMED: list[tuple[str, bytes | Edit, str, str]] = [
    ("unknown-top-level-key", _set("vaults", value={}), "vaults", "unknown key"),
    (
        "unknown-nested-key",
        _set("schedule", value={"intervall": "5m"}),
        "schedule.intervall",
        "did you mean 'interval'",
    ),
    (
        "unknown-key-in-list",
        _set("credentials", 0, "vault", "pth", value="x"),
        "credentials[0].vault.pth",
        "unknown key",
    ),
    (
        "unknown-key-lists-the-known-ones",
        _set("server", value={"port": 8080}),
        "server.port",
        "expected one of: address",
    ),
    (
        "duplicate-credential-name",
        _set("credentials", 2, "name", value="ghcr"),
        "credentials[2].name",
        "duplicate credential name 'ghcr' (first at credentials[0])",
    ),
    (
        "duplicate-secret-name",
        _set("secrets", 1, "name", value="regcred"),
        "secrets[1].name",
        "duplicate secret name 'regcred'",
    ),
    (
        "secret-names-unknown-credential",
        _set("secrets", 0, "credentials", value=["ghcr", "gcr"]),
        "secrets[0].credentials[1]",
        "unknown credential 'gcr'",
    ),
    (
        "secret-lists-a-credential-twice",
        _set("secrets", 0, "credentials", value=["ghcr", "ghcr"]),
        "secrets[0].credentials[1]",
        "'ghcr' is listed twice",
    ),
    (
        "two-credentials-one-registry",
        _both(
            _set("credentials", 2, "registries", value=["ghcr.io"]), _set("secrets", 0, "credentials", 1, value="file")
        ),
        "secrets[0].credentials[1]",
        "registry 'ghcr.io' is also given by credential 'ghcr'",
    ),
    (
        "selector-set-without-parentheses",
        _set("secrets", 0, "namespaces", "selector", value="env in prod"),
        "secrets[0].namespaces.selector",
        "cannot parse 'env in prod'",
    ),
    (
        "selector-empty-set",
        _set("secrets", 0, "namespaces", "selector", value="env in ()"),
        "secrets[0].namespaces.selector",
        "in needs at least one value",
    ),
    (
        "selector-unclosed-parenthesis",
        _set("secrets", 0, "namespaces", "selector", value="env in (a,b"),
        "secrets[0].namespaces.selector",
        "cannot parse",
    ),
    (
        "selector-stray-comma",
        _set("secrets", 0, "namespaces", "selector", value="a=b,"),
        "secrets[0].namespaces.selector",
        "an empty term",
    ),
    (
        "selector-bad-key",
        _set("secrets", 0, "namespaces", "selector", value="-team=x"),
        "secrets[0].namespaces.selector",
        "'-team' is not a valid label key",
    ),
    (
        "selector-bad-value",
        _set("secrets", 0, "namespaces", "selector", value="team=a b"),
        "secrets[0].namespaces.selector",
        "cannot parse 'team=a b'",
    ),
    (
        "selector-double-equals-value",
        _set("secrets", 0, "namespaces", "selector", value="a=b=c"),
        "secrets[0].namespaces.selector",
        "'b=c' is not a valid label value",
    ),
    (
        "selector-greater-than-needs-integer",
        _set("secrets", 0, "namespaces", "selector", value="tier>gold"),
        "secrets[0].namespaces.selector",
        "> needs a whole number from 0 to 9223372036854775807",
    ),
    (
        "selector-less-than-a-negative-number",  # the apiserver refuses it: not a label value
        _set("secrets", 0, "namespaces", "selector", value="x<-1"),
        "secrets[0].namespaces.selector",
        "< needs a whole number from 0 to 9223372036854775807",
    ),
    (
        "selector-greater-than-past-int64",
        _set("secrets", 0, "namespaces", "selector", value="x>9223372036854775808"),
        "secrets[0].namespaces.selector",
        "> needs a whole number from 0 to 9223372036854775807",
    ),
    (
        "selector-set-ending-in-two-commas",  # the apiserver's parser refuses `(b,,)`, takes `(b,,c)`
        _set("secrets", 0, "namespaces", "selector", value="a in (b,,)"),
        "secrets[0].namespaces.selector",
        "not a comma-separated list",
    ),
    (
        "selector-empty",
        _set("secrets", 0, "namespaces", "selector", value="  "),
        "secrets[0].namespaces.selector",
        "the selector is empty",
    ),
    (
        "duration-with-words",
        _set("schedule", value={"interval": "5 minutes"}),
        "schedule.interval",
        "expected a duration such as 30s, 5m or 12h, got '5 minutes'",
    ),
    (
        "duration-negative",
        _set("schedule", value={"jitter": "-1s"}),
        "schedule.jitter",
        "expected a duration such as 30s, 5m or 12h, got '-1s'",
    ),
    (
        "duration-negative-number",
        _set("schedule", value={"jitter": -1}),
        "schedule.jitter",
        "a duration cannot be negative",
    ),
    ("duration-garbage", _set("credentials", 1, "lifetime", value="abc"), "credentials[1].lifetime", "got 'abc'"),
    (
        "duration-infinite",
        b"credentials: []\nschedule: {interval: .inf}\n",
        "schedule.interval",
        "is too long",
    ),
    (
        "duration-too-long",
        _set("schedule", value={"interval": "99999999999999d"}),
        "schedule.interval",
        "is too long",
    ),
    ("interval-too-short", _set("schedule", value={"interval": "500ms"}), "schedule.interval", "at least 1s"),
    (
        "helper-timeout-zero",
        _set("credentials", 1, "helper_timeout", value="0s"),
        "credentials[1].helper_timeout",
        "0s",
    ),
    (
        "registry-scheme-only",
        _set("credentials", 0, "registry", value="https://"),
        "credentials[0].registry",
        "'https://' has no host",
    ),
    (
        "registry-port-out-of-range",
        _set("credentials", 0, "registry", value="ghcr.io:99999"),
        "credentials[0].registry",
        "invalid port '99999'",
    ),
    (
        "registry-with-space",
        _set("credentials", 0, "registry", value="bad host"),
        "credentials[0].registry",
        "'bad host' is not a well-formed registry host",
    ),
    (
        "registry-empty-label",
        _set("credentials", 0, "registry", value="a..b"),
        "credentials[0].registry",
        "'a..b' is not a well-formed registry host",
    ),
    (
        "registry-trailing-newline",
        _set("credentials", 0, "registry", value="ghcr.io\n"),
        "credentials[0].registry",
        "is not a well-formed registry host",
    ),
    (
        "registries-entry-malformed",
        _set("credentials", 2, "registries", value=["quay.io", "quay io"]),
        "credentials[2].registries",
        "'quay io' is not a well-formed registry host",
    ),
    (
        "vault-credential-without-vault-block",
        _delete("vault"),
        "credentials[0].vault",
        "no top-level `vault:` block",
    ),
    (
        "credential-with-two-sources",
        _set("credentials", 0, "helper", value="pass"),
        "credentials[0]",
        "needs exactly one source of vault, helper, docker_config (found: vault, helper)",
    ),
    (
        "credential-without-source",
        _delete("credentials", 0, "vault"),
        "credentials[0]",
        "(found: none)",
    ),
    ("helper-without-registry", _delete("credentials", 1, "registry"), "credentials[1]", "needs `registry`"),
    (
        "docker-config-without-registries",
        _delete("credentials", 2, "registries"),
        "credentials[2]",
        "needs `registries`",
    ),
    (
        "helper-given-as-a-path",
        _set("credentials", 1, "helper", value="/usr/local/bin/docker-credential-ecr-login"),
        "credentials[1].helper",
        "never a path",
    ),
    (
        "credential-name-with-space",
        _set("credentials", 1, "name", value="my ecr"),
        "credentials[1].name",
        "'my ecr' is not a valid credential name",
    ),
    ("vault-path-missing", _delete("credentials", 0, "vault", "path"), "credentials[0].vault.path", "required key"),
    ("vault-kv-version", _set("credentials", 0, "vault", "kv", value=3), "credentials[0].vault.kv", "1 or 2"),
    (
        "approle-without-role-id",
        _set("vault", "auth", value={"method": "approle", "secret_id_file": "/etc/syncd/secret-id"}),
        "vault.auth",
        "auth method 'approle' needs role_id",
    ),
    (
        "kubernetes-auth-without-role",
        _set("vault", "auth", value={"method": "kubernetes"}),
        "vault.auth",
        "auth method 'kubernetes' needs role",
    ),
    (
        "jwt-auth-without-token-file",
        _set("vault", "auth", value={"method": "jwt", "role": "syncd"}),
        "vault.auth",
        "needs token_file",
    ),
    ("unknown-auth-method", _set("vault", "auth", "method", value="ldap"), "vault.auth.method", "'kubernetes'"),
    ("vault-address-not-a-url", _set("vault", "address", value="vault:8200"), "vault.address", "is not a URL"),
    (
        "vault-address-plain-http",
        _set("vault", "address", value="http://vault.vault.svc:8200"),
        "vault.address",
        "is plain HTTP: syncd's Vault token, its login and every credential it reads would cross the network "
        "unencrypted; use https://, or set vault.allow_http: true to accept that",
    ),
    (
        "vault-address-plain-http-on-loopback",
        _set("vault", "address", value="http://127.0.0.1:8200"),
        "vault.address",
        "set vault.allow_http: true",
    ),
    ("vault-allow-http-not-a-boolean", _set("vault", "allow_http", value="maybe"), "vault.allow_http", "true or false"),
    (
        "secret-name-uppercase",
        _set("secrets", 0, "name", value="RegCred"),
        "secrets[0].name",
        "'RegCred' is not a valid Secret name",
    ),
    (
        "namespace-name-invalid",
        _set("secrets", 0, "namespaces", "names", value=["payments", "Team_A"]),
        "secrets[0].namespaces.names",
        "not valid namespace names: 'Team_A'",
    ),
    (
        "namespace-glob-that-never-matches",
        _set("secrets", 1, "namespaces", "patterns", value=["Team-*"]),
        "secrets[1].namespaces.patterns",
        "'Team-*' can never match",
    ),
    (
        "service-account-invalid",
        _set("secrets", 0, "service_accounts", value=["default", "Builder"]),
        "secrets[0].service_accounts",
        "not valid ServiceAccount names: 'Builder'",
    ),
    (
        "reserved-label",
        _set("secrets", 0, "labels", value={"syncd.io/x": "y"}),
        "secrets[0].labels",
        "reserved for syncd's own bookkeeping: syncd.io/x",
    ),
    (
        "reserved-annotation",
        _set("secrets", 0, "annotations", value={"app.kubernetes.io/managed-by": "helm"}),
        "secrets[0].annotations",
        "reserved for syncd's own bookkeeping: app.kubernetes.io/managed-by",
    ),
    (
        "label-value-invalid",
        _set("secrets", 0, "labels", value={"team": "a b"}),
        "secrets[0].labels",
        "'a b' is not a valid label value",
    ),
    (
        "label-value-unquoted-boolean",
        b"credentials: []\nsecrets:\n  - labels: {enabled: yes}\n",
        "secrets[0].labels.enabled",
        "quote it",
    ),
    (
        "retry-min-above-max",
        _set("schedule", value={"retry": {"min": "10m", "max": "1m"}}),
        "schedule.retry",
        "min is longer than max",
    ),
    ("retry-min-zero", _set("schedule", value={"retry": {"min": "0s"}}), "schedule.retry.min", "longer than 0s"),
    (
        "refresh-before-expiry-one",
        _set("schedule", value={"refresh_before_expiry": 1}),
        "schedule.refresh_before_expiry",
        "less than 1",
    ),
    (
        "refresh-before-expiry-zero",
        _set("schedule", value={"refresh_before_expiry": 0}),
        "schedule.refresh_before_expiry",
        "greater than 0",
    ),
    (
        "on-conflict-other",
        _set("secrets", 0, "on_conflict", value="replace"),
        "secrets[0].on_conflict",
        "'skip' or 'adopt'",
    ),
    ("credentials-empty", _set("credentials", value=[]), "credentials", "must not be empty"),
    ("secret-credentials-empty", _set("secrets", 0, "credentials", value=[]), "secrets[0].credentials", "not be empty"),
    ("secrets-missing", _delete("secrets"), "secrets", "required key is missing"),
    (
        "namespaces-select-nothing",
        _set("secrets", 0, "namespaces", value={"exclude": ["kube-*"]}),
        "secrets[0].namespaces",
        "selects nothing",
    ),
    (
        "string-where-list-expected",
        _set("secrets", 0, "service_accounts", value="*"),
        "secrets[0].service_accounts",
        "expected a list, got a string",
    ),
    (
        "list-where-mapping-expected",
        _set("secrets", 0, "namespaces", value=["payments"]),
        "secrets[0].namespaces",
        "expected a mapping, got a list",
    ),
    (
        "mapping-where-list-expected",
        _set("credentials", value={"ghcr": {"registry": "ghcr.io"}}),
        "credentials",
        "expected a list, got a mapping",
    ),
    ("null-credential", _set("credentials", 1, value=None), "credentials[1]", "expected a mapping, got null"),
    ("integer-where-string-expected", _set("secrets", 0, "name", value=42), "secrets[0].name", "got an integer"),
    (
        "server-port-out-of-range",
        _set("server", value={"address": "0.0.0.0:99999"}),
        "server.address",
        "port 1-65535",
    ),
    (
        "lease-namespace-invalid",
        _set("leader_election", value={"enabled": True, "namespace": "Syncd System"}),
        "leader_election.namespace",
        "not a valid namespace name",
    ),
    (
        "non-string-key",
        b"credentials: []\nsecrets:\n  - labels: {2024: x}\n",
        "secrets[0].labels.2024",
        "this key is not a string",
    ),
    ("yaml-syntax-error", b"credentials:\n  - name: [ghcr\nsecrets: []\n", "", "line 3, column"),
    ("yaml-tab-indent", b"credentials:\n\t- name: ghcr\n", "", "line 2, column 1"),
    ("yaml-duplicate-key", b"secrets: []\ncredentials: []\nsecrets: []\n", "", "line 3, column 1: duplicate key"),
    ("yaml-two-documents", b"credentials: []\n---\nsecrets: []\n", "", "expected a single document"),
    ("yaml-control-character", b"credentials: []\nsecrets: \x07\n", "", "line 2, column 10: character U+0007"),
    ("top-level-list", b"- name: ghcr\n  registry: ghcr.io\n", "", "expected a mapping"),
    ("top-level-string", b"just some text\n", "", "at the top level, got a string"),
    ("empty-file", b"", "", "the config is empty"),
    ("only-comments", b"# credentials: []\n", "", "the config is empty"),
    ("not-utf8", b"credentials: []\nsecrets: \xff\xfe\n", "", "line 2, column 10: the file is not UTF-8"),
    ("python-tag", b"credentials: !!python/object/apply:os.system [true]\n", "", "could not determine a constructor"),
]


@pytest.mark.parametrize(("content", "key_path", "fragment"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_check_config_reports_the_problem_at_its_key_path(
    content: bytes | Edit, key_path: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_bytes(content if isinstance(content, bytes) else _yaml(content))
    code, out, err = _check(path, capsys)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith(f"syncd: invalid config {path}: ")
    problems = [line.strip() for line in lines[1:]]
    if key_path:
        assert any(p.startswith(f"{key_path}: ") and fragment in p for p in problems), err
    else:
        assert any(fragment in p for p in problems), err


def test_malformed_cases_are_distinct_and_numerous() -> None:
    assert len({c[0] for c in MALFORMED}) == len(MALFORMED) >= 30


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(tmp_path / "nope.yaml", capsys)
    assert code == 2
    assert "cannot read the file: No such file or directory" in err
    assert "Traceback" not in err


def test_a_directory_is_not_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(tmp_path, capsys)
    assert code == 2
    assert "cannot read the file" in err


def test_every_problem_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy.deepcopy(VALID)
    config["colour"] = "blue"
    config["credentials"][0]["registry"] = "bad host"
    config["credentials"][1]["helper_timeout"] = "soon"
    config["secrets"][0]["namespaces"]["selector"] = "env in prod"
    config["secrets"][1]["credentials"] = ["nope"]
    config["schedule"] = {"refresh_before_expiry": 2}
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = _check(path, capsys)
    assert code == 2
    header, *problems = err.splitlines()
    assert header.endswith(": 6 problem(s)")
    assert sorted(p.strip().split(":")[0] for p in problems) == [
        "colour",
        "credentials[0].registry",
        "credentials[1].helper_timeout",
        "schedule.refresh_before_expiry",
        "secrets[0].namespaces.selector",
        "secrets[1].credentials[0]",
    ]


def test_messages_never_echo_the_value_of_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret pasted into the config by mistake stays out of the output."""
    config = copy.deepcopy(VALID)
    config["vault"]["auth"]["secret_id"] = "hunter2-sentinel-value"
    config["vault"]["auth"]["role_id"] = ["also-a-sentinel-value"]
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = _check(path, capsys)
    assert code == 2
    assert "vault.auth.secret_id: unknown key (did you mean 'secret_id_file'?)" in err
    assert "vault.auth.role_id: expected a string, got a list" in err
    assert "sentinel" not in err


def test_the_example_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(EXAMPLE, capsys)
    assert (code, err) == (0, "")
    assert out.strip() == f"{EXAMPLE}: valid (3 credentials, 2 secret specs)"


def test_the_example_shows_every_key_of_the_config() -> None:
    """SPEC §3: the example is complete, so that it documents every key."""
    example = yaml.safe_load(EXAMPLE.read_text())
    shown = _keys(example)
    required = _keys(Config.model_json_schema(), schema=True)
    # approle's keys are commented out in the example (its auth method is kubernetes).
    assert required - shown == {"vault.auth.role_id", "vault.auth.secret_id_file"}


def _keys(node: Any, prefix: str = "", *, schema: bool = False) -> set[str]:
    """Dotted key paths of a config (or of the config's JSON Schema when schema=True); list items merged."""
    if schema:
        return _schema_keys(node, node, prefix)
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            keys |= {f"{prefix}{key}"} | _keys(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for item in node:
            keys |= _keys(item, prefix)
    return keys


def _schema_keys(root: dict[str, Any], node: dict[str, Any], prefix: str) -> set[str]:
    if "$ref" in node:
        return _schema_keys(root, root["$defs"][node["$ref"].rsplit("/", 1)[1]], prefix)
    keys: set[str] = set()
    for option in node.get("anyOf", []):
        keys |= _schema_keys(root, option, prefix)
    if "items" in node:
        keys |= _schema_keys(root, node["items"], prefix)
    for key, value in node.get("properties", {}).items():
        keys |= {f"{prefix}{key}"} | _schema_keys(root, value, f"{prefix}{key}.")
    return keys


MINIMAL: dict[str, Any] = {
    "credentials": [{"name": "ghcr", "registry": "ghcr.io", "helper": "pass"}],
    "secrets": [{"name": "regcred", "credentials": ["ghcr"], "namespaces": {"names": ["payments"]}}],
}


def test_defaults_are_those_of_the_spec() -> None:
    config = parse_config(copy.deepcopy(MINIMAL))
    assert config.vault is None
    schedule = config.schedule
    assert schedule.interval == dt.timedelta(minutes=5)
    assert schedule.jitter == dt.timedelta(seconds=30)
    assert schedule.refresh_before_expiry == 0.33
    assert (schedule.retry.min, schedule.retry.max) == (dt.timedelta(seconds=5), dt.timedelta(minutes=5))
    assert config.server.address == "0.0.0.0:8080"
    election = config.leader_election
    assert (election.enabled, election.namespace, election.name) == (False, "syncd", "syncd")
    assert election.lease_duration == dt.timedelta(seconds=15)
    credential = config.credentials[0]
    assert isinstance(credential, HelperCredential)
    assert credential.helper_timeout == dt.timedelta(seconds=30)
    assert credential.lifetime is None
    spec = config.secrets[0]
    assert (spec.on_conflict, spec.prune, spec.service_accounts) == ("skip", True, [])
    assert (spec.labels, spec.annotations) == ({}, {})


def test_vault_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    raw = copy.deepcopy(MINIMAL)
    raw["vault"] = {}
    raw["credentials"] = [{"name": "ghcr", "registry": "ghcr.io", "vault": {"path": "registry/ghcr"}}]
    config = parse_config(raw)
    assert config.vault is not None
    assert config.vault.auth.method == "token"
    assert config.vault.auth.mount_path == "token"
    assert config.vault.timeout == dt.timedelta(seconds=10)
    credential = config.credentials[0]
    assert isinstance(credential, VaultCredential)
    secret = credential.vault
    assert (secret.kv, secret.mount) == (None, "secret")
    assert (secret.username_field, secret.password_field, secret.email_field) == ("username", "password", "email")


def test_kubernetes_auth_reads_the_service_account_token_by_default() -> None:
    raw = copy.deepcopy(VALID)
    auth = parse_config(raw).vault.auth  # type: ignore[union-attr]
    assert auth.mount_path == "kubernetes"
    assert str(auth.jwt_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("12h", 43200),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2d", 172800),
        (90, 90),
        (" 5m ", 300),
    ],
)
def test_durations_as_users_write_them(written: object, seconds: float) -> None:
    raw = copy.deepcopy(MINIMAL)
    raw["credentials"][0]["helper_timeout"] = written
    credential = parse_config(raw).credentials[0]
    assert isinstance(credential, HelperCredential)
    assert credential.helper_timeout.total_seconds() == seconds


@pytest.mark.parametrize(
    "selector",
    [
        "pull-secrets=enabled",
        "a==b,c!=d",
        "env in (prod, staging),!legacy",
        "tier notin (a),team",
        "priority>5,x<0",
        "a in (b,,c)",
    ],
)
def test_label_selectors_kubernetes_accepts(selector: str) -> None:
    raw = copy.deepcopy(MINIMAL)
    raw["secrets"][0]["namespaces"] = {"selector": selector}
    assert parse_config(raw).secrets[0].namespaces.selector == selector


def test_an_empty_vault_block_is_enough_for_vault_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vault: {}` means: address from $VAULT_ADDR, token from $VAULT_TOKEN. It is not missing."""
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    raw = copy.deepcopy(VALID)
    raw["vault"] = {}
    assert parse_config(raw).vault is not None


def _vault_problems(vault: dict[str, Any]) -> list[str]:
    raw = copy.deepcopy(VALID)
    raw["vault"] = vault
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    "address", ["http://vault:8200", "HTTP://vault:8200", " http://127.0.0.1:8200", "http://[::1]"]
)
def test_plain_http_from_vault_addr_is_refused_at_vault_address(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """The check is on the address syncd will use: $VAULT_ADDR when vault.address is not set."""
    monkeypatch.setenv("VAULT_ADDR", address)
    assert _vault_problems({}) == [
        f"vault.address: not set, and $VAULT_ADDR {address!r} is plain HTTP: syncd's Vault token, its login and "
        "every credential it reads would cross the network unencrypted; use https://, or set "
        "vault.allow_http: true to accept that"
    ]


def test_vault_address_wins_over_vault_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://vault:8200")
    raw = copy.deepcopy(VALID)
    assert parse_config(raw).vault.url == "https://vault.vault.svc:8200"  # type: ignore[union-attr]
    monkeypatch.setenv("VAULT_ADDR", "https://vault:8200")
    assert _vault_problems({"address": "http://vault:8200"})[0].startswith("vault.address: 'http://vault:8200' is")


@pytest.mark.parametrize("vault", [{"address": "http://127.0.0.1:8200", "allow_http": True}, {"allow_http": True}])
def test_allow_http_accepts_plain_http_when_said(monkeypatch: pytest.MonkeyPatch, vault: dict[str, Any]) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://vault:8200")
    raw = copy.deepcopy(VALID)
    raw["vault"] = vault
    config = parse_config(raw).vault
    assert config is not None
    assert (config.allow_http, config.plain_http) == (True, True)


def test_https_and_no_address_need_no_allow_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    raw = copy.deepcopy(VALID)
    raw["vault"] = {}
    assert parse_config(raw).vault.plain_http is False  # type: ignore[union-attr]
    raw["vault"] = {"address": "https://vault:8200"}
    assert parse_config(raw).vault.allow_http is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("auth", "sends"),
    [
        ({"method": "kubernetes", "role": "syncd"}, True),
        ({"method": "kubernetes", "role": "syncd", "token_file": str(DEFAULT_API_TOKEN)}, True),
        ({"method": "kubernetes", "role": "syncd", "token_file": "/var/run/secrets/vault/token"}, False),
        ({"method": "jwt", "role": "syncd", "token_file": str(DEFAULT_API_TOKEN)}, False),
    ],
)
def test_kubernetes_auth_with_the_api_token_is_flagged(auth: dict[str, str], sends: bool) -> None:
    raw = copy.deepcopy(VALID)
    raw["vault"]["auth"] = auth
    assert parse_config(raw).vault.auth.sends_api_token is sends  # type: ignore[union-attr]


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_text(
        "credentials:\n"
        "  - &base {name: ghcr, registry: ghcr.io, helper: pass}\n"
        "  - {<<: *base, name: quay, registry: quay.io}\n"
        "secrets:\n"
        "  - {name: regcred, credentials: [ghcr, quay], namespaces: {names: [payments]}}\n"
    )
    config = load_config(path)
    assert all(isinstance(c, HelperCredential) for c in config.credentials)
    assert [(c.name, c.registry_names, getattr(c, "helper", None)) for c in config.credentials] == [
        ("ghcr", ["ghcr.io"], "pass"),
        ("quay", ["quay.io"], "pass"),
    ]


def test_an_empty_credentials_list_is_one_problem_not_one_per_reference() -> None:
    raw = copy.deepcopy(VALID)
    raw["credentials"] = []
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert [str(p) for p in error.value.problems] == ["credentials: must not be empty"]


def test_an_invalid_config_raises_config_error_listing_problems() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"credentials": "x"}, source="inline")
    assert [str(p) for p in error.value.problems] == [
        "credentials: expected a list, got a string",
        "secrets: required key is missing",
    ]
    assert str(error.value).startswith("inline: 2 problem(s)\n")


_KEYS = st.sampled_from(
    ["vault", "credentials", "secrets", "schedule", "name", "registry", "helper", "namespaces", "interval", "kv"]
)
_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_JSON_LIKE = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON_LIKE)
def test_parse_config_on_arbitrary_input_raises_only_config_error(raw: object) -> None:
    outcome = _outcome(raw)
    assert isinstance(outcome, Config) or outcome.problems


def _outcome(raw: object) -> Config | ConfigError:
    """parse_config's result or its ConfigError; any other exception fails the test."""
    try:
        return parse_config(raw)
    except ConfigError as error:
        return error


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    paths = [prefix] if prefix else []
    children: list[tuple[str | int, object]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    for key, value in children:
        paths += _paths(value, (*prefix, key))
    return paths


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_paths(VALID)), _JSON_LIKE)
def test_parse_config_on_a_valid_config_with_one_value_replaced(path: tuple[str | int, ...], value: object) -> None:
    """Reaches the deep validators (durations, selectors, registries) that random mappings never get to."""
    raw = copy.deepcopy(VALID)
    _set(*path, value=value)(raw)
    outcome = _outcome(raw)
    problems = [] if isinstance(outcome, Config) else outcome.problems
    assert all(p.message and not p.message.startswith("Value error") for p in problems)
