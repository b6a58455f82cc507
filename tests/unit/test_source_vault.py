"""VaultSource and VaultSession against a scripted stand-in for hvac.Client.

The stand-in sits at our boundary (the hvac calls vault.py makes), so these tests pin down
decisions that are slow or awkward to provoke in a real server: every error translation, the
renewal schedule under an injected clock, the 403 re-login, and what reaches messages and logs.
The same behaviour is tested against a real OpenBao in tests/integration/test_source_vault.py.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hvac.exceptions
import pytest
import requests

from syncd.config import VaultConfig, VaultCredential
from syncd.core.errors import CredentialNotFound, InvalidCredential, SourceDenied, SourceError, SourceUnavailable
from syncd.core.values import Lease
from syncd.sources.vault import VaultSession, VaultSource

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PASSWORD = "pw-unit-6c1f0e"  # the secret value no message or log line may contain
SECRET_ID = "secret-id-unit-91ab"
JWT = "jwt-unit-aa57"


@dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    token: str


def _login(token: str, ttl: int = 60, renewable: bool = True) -> dict[str, Any]:
    return {"auth": {"client_token": token, "lease_duration": ttl, "renewable": renewable}}


def _kv2(data: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"data": data, "metadata": {"version": 2}}, "lease_duration": 0}


GOOD = {"username": "robot", "password": PASSWORD, "email": "robot@example.com"}


@dataclass
class FakeHvac:
    """Answers each hvac call from a queue of outcomes (the last one repeats); records every call."""

    token: str = ""
    calls: list[Call] = field(default_factory=list)
    outcomes: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        op = self._op
        self.auth = SimpleNamespace(
            approle=SimpleNamespace(login=op("approle.login", login=True)),
            kubernetes=SimpleNamespace(login=op("kubernetes.login", login=True)),
            jwt=SimpleNamespace(jwt_login=op("jwt.jwt_login", login=True)),
            token=SimpleNamespace(renew_self=op("renew_self"), lookup_self=op("lookup_self")),
        )
        kv = SimpleNamespace(
            v1=SimpleNamespace(read_secret=op("kv1.read_secret")),
            v2=SimpleNamespace(read_secret_version=op("kv2.read_secret_version")),
        )
        self.secrets = SimpleNamespace(kv=kv)
        self.read = op("read")
        self.will("approle.login", _login("tok-1"))
        self.will("kv2.read_secret_version", _kv2(GOOD))

    def will(self, name: str, *outcomes: object) -> FakeHvac:
        self.outcomes[name][:] = list(outcomes)
        return self

    def named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def _op(self, name: str, *, login: bool = False) -> Callable[..., object]:
        def run(*args: Any, **kwargs: Any) -> object:
            self.calls.append(Call(name, args, kwargs, self.token))
            queue = self.outcomes[name]
            outcome = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(outcome, BaseException):
                raise outcome
            if login:
                self.token = outcome["auth"]["client_token"]  # type: ignore[index]
            return outcome

        return run


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def secret_id_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret-id"
    path.write_text(SECRET_ID + "\n")
    return path


def _approle_config(secret_id_file: Path) -> VaultConfig:
    return VaultConfig.model_validate(
        {
            "address": "https://vault.test:8200",
            "auth": {"method": "approle", "role_id": "role-1", "secret_id_file": str(secret_id_file)},
        }
    )


@pytest.fixture
def fake() -> FakeHvac:
    return FakeHvac()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(fake: FakeHvac, clock: Clock, secret_id_file: Path) -> VaultSource:
    return VaultSource(VaultSession(_approle_config(secret_id_file), now=clock, client=fake))


def _credential(**vault: Any) -> VaultCredential:
    extra = vault.pop("credential", {})
    spec = {"kv": 2, "mount": "secret", "path": "registry/ghcr", **vault}
    return VaultCredential.model_validate({"name": "ghcr", "registry": "ghcr.io", "vault": spec, **extra})


# --- reading and field extraction ---------------------------------------------------------------


def test_kv2_latest_version_becomes_one_registry_entry(source: VaultSource, fake: FakeHvac) -> None:
    fetched = source.fetch(_credential())
    assert fetched.name == "ghcr"
    assert fetched.source == "vault"
    assert fetched.expires_at is None
    [entry] = fetched.entries
    assert (entry.registry, entry.username, entry.password, entry.email) == (
        "ghcr.io",
        "robot",
        PASSWORD,
        "robot@example.com",
    )
    [read] = fake.named("kv2.read_secret_version")
    assert read.args == ("registry/ghcr",)
    assert read.kwargs == {"mount_point": "secret", "raise_on_deleted_version": True}
    assert read.token == "tok-1"


def test_kv1_reads_the_secret_and_ignores_its_refresh_hint(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("kv1.read_secret", {"data": GOOD, "lease_duration": 2764800})
    fetched = source.fetch(_credential(kv=1, mount="/kv1/", path="/a/b"))
    assert fetched.entries[0].password == PASSWORD
    assert fetched.expires_at is None
    assert fake.named("kv1.read_secret")[0].args == ("a/b",)
    assert fake.named("kv1.read_secret")[0].kwargs == {"mount_point": "kv1"}


def test_logical_read_uses_the_lease_as_expiry(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("read", {"data": GOOD, "lease_duration": 3600, "lease_id": "x"})
    fetched = source.fetch(_credential(kv=None, mount="robots", path="creds/ci"))
    assert fake.named("read")[0].args == ("robots/creds/ci",)
    assert fetched.expires_at == START + dt.timedelta(hours=1)


def test_a_logical_read_carries_its_lease_and_kv_never_does(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("read", {"data": GOOD, "lease_duration": 3600, "lease_id": "robots/creds/ci/abc", "renewable": True})
    fetched = source.fetch(_credential(kv=None, mount="robots", path="creds/ci"))
    assert fetched.lease == Lease("robots/creds/ci/abc", True, dt.timedelta(hours=1))
    assert "abc" not in repr(fetched)
    fake.will("kv1.read_secret", {"data": GOOD, "lease_duration": 2764800, "lease_id": "kv/a"})
    assert source.fetch(_credential(kv=1)).lease is None


def test_configured_lifetime_wins_over_the_lease(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("read", {"data": GOOD, "lease_duration": 3600})
    fetched = source.fetch(_credential(kv=None, credential={"lifetime": "10m"}))
    assert fetched.expires_at == START + dt.timedelta(minutes=10)


def test_custom_field_names_and_no_email(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("kv2.read_secret_version", _kv2({"user": "u", "token": PASSWORD, "email": 42}))
    fetched = source.fetch(_credential(username_field="user", password_field="token", email_field=None))
    assert (fetched.entries[0].username, fetched.entries[0].password, fetched.entries[0].email) == ("u", PASSWORD, "")


def test_missing_email_field_is_empty(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("kv2.read_secret_version", _kv2({"username": "u", "password": PASSWORD}))
    assert source.fetch(_credential()).entries[0].email == ""


@pytest.mark.parametrize("field_name", ["username", "password"])
def test_missing_field_names_field_and_path(source: VaultSource, fake: FakeHvac, field_name: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != field_name}
    fake.will("kv2.read_secret_version", _kv2(data))
    with pytest.raises(InvalidCredential) as err:
        source.fetch(_credential())
    assert f"'{field_name}'" in str(err.value)
    assert "secret/registry/ghcr" in str(err.value)
    assert "ghcr" in str(err.value)
    assert PASSWORD not in str(err.value)


@pytest.mark.parametrize("value", [12345, {"nested": PASSWORD}, [PASSWORD], True])
def test_non_string_field_is_invalid_without_its_value(source: VaultSource, fake: FakeHvac, value: object) -> None:
    fake.will("kv2.read_secret_version", _kv2({"username": "u", "password": value}))
    with pytest.raises(InvalidCredential) as err:
        source.fetch(_credential())
    assert "'password'" in str(err.value)
    assert "expected a string" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert "12345" not in str(err.value)


@pytest.mark.parametrize(
    ("kv", "operation", "answer"),
    [
        (None, "read", None),  # hvac's logical read answers None on 404
        (2, "kv2.read_secret_version", {"data": {"data": None, "metadata": {}}}),
        (1, "kv1.read_secret", {"data": None}),
    ],
)
def test_empty_answer_is_not_found(
    source: VaultSource, fake: FakeHvac, kv: int | None, operation: str, answer: object
) -> None:
    fake.will(operation, answer)
    with pytest.raises(CredentialNotFound, match="secret/registry/ghcr"):
        source.fetch(_credential(kv=kv))


# --- error translation --------------------------------------------------------------------------

BODY = f"response body echoing {PASSWORD}"


def _vault_error(cls: type[hvac.exceptions.VaultError]) -> hvac.exceptions.VaultError:
    return cls(BODY, errors=[BODY], method="GET", url="https://vault.test:8200/v1/secret/data/registry/ghcr")


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (_vault_error(hvac.exceptions.InvalidPath), CredentialNotFound, "nothing at secret/registry/ghcr"),
        (_vault_error(hvac.exceptions.InvalidRequest), CredentialNotFound, "HTTP 400"),
        (_vault_error(hvac.exceptions.VaultDown), SourceUnavailable, "sealed"),
        (_vault_error(hvac.exceptions.InternalServerError), SourceUnavailable, "HTTP 500"),
        (_vault_error(hvac.exceptions.BadGateway), SourceUnavailable, "HTTP 502"),
        (_vault_error(hvac.exceptions.RateLimitExceeded), SourceUnavailable, "HTTP 429"),
        (_vault_error(hvac.exceptions.UnexpectedError), SourceUnavailable, "UnexpectedError"),
        (requests.exceptions.ConnectionError(BODY), SourceUnavailable, "cannot connect to Vault at https://vault.test"),
        (requests.exceptions.ReadTimeout(BODY), SourceUnavailable, "did not answer in time"),
        (
            requests.exceptions.SSLError(f"[SSL: CERTIFICATE_VERIFY_FAILED] {BODY}"),
            SourceUnavailable,
            "TLS verification",
        ),
    ],
)
def test_errors_are_translated_with_our_own_message(
    source: VaultSource, fake: FakeHvac, error: Exception, expected: type[SourceError], text: str
) -> None:
    fake.will("kv2.read_secret_version", error)
    with pytest.raises(expected) as err:
        source.fetch(_credential())
    assert err.value.credential == "ghcr"
    assert text in str(err.value)
    assert "secret/registry/ghcr" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert err.value.__cause__ is error


# --- login, reuse, 403 --------------------------------------------------------------------------


def test_one_login_is_reused_across_credentials_and_fetches(source: VaultSource, fake: FakeHvac) -> None:
    for path in ("a", "b", "a", "c"):
        source.fetch(_credential(path=path))
    [login] = fake.named("approle.login")
    assert login.args == ("role-1", SECRET_ID)
    assert login.kwargs == {"mount_point": "approle"}
    assert {c.token for c in fake.named("kv2.read_secret_version")} == {"tok-1"}


def test_403_logs_in_again_once_and_retries_once(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("approle.login", _login("tok-1"), _login("tok-2"))
    fake.will("kv2.read_secret_version", _vault_error(hvac.exceptions.Forbidden), _kv2(GOOD))
    assert source.fetch(_credential()).entries[0].password == PASSWORD
    assert [c.token for c in fake.named("kv2.read_secret_version")] == ["tok-1", "tok-2"]
    assert len(fake.named("approle.login")) == 2


def test_403_after_the_new_login_is_denied(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("kv2.read_secret_version", _vault_error(hvac.exceptions.Forbidden))
    with pytest.raises(SourceDenied, match="HTTP 403") as err:
        source.fetch(_credential())
    assert PASSWORD not in str(err.value)
    assert len(fake.named("approle.login")) == 2
    assert len(fake.named("kv2.read_secret_version")) == 2


def test_the_secret_id_file_is_read_at_each_login(source: VaultSource, fake: FakeHvac, secret_id_file: Path) -> None:
    fake.will("kv2.read_secret_version", _vault_error(hvac.exceptions.Forbidden), _kv2(GOOD))
    source.fetch(_credential())
    secret_id_file.write_text("rotated-secret-id")
    fake.will("kv2.read_secret_version", _vault_error(hvac.exceptions.Forbidden), _kv2(GOOD))
    source.fetch(_credential())
    assert [c.args[1] for c in fake.named("approle.login")] == [SECRET_ID, SECRET_ID, "rotated-secret-id"]


def test_login_refused_is_denied(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("approle.login", _vault_error(hvac.exceptions.InvalidRequest))
    with pytest.raises(SourceDenied, match=r"refused the login at auth/approle/login \(HTTP 400\)") as err:
        source.fetch(_credential())
    assert PASSWORD not in str(err.value)
    assert not fake.named("kv2.read_secret_version")


def test_failed_login_is_tried_again_on_the_next_fetch(source: VaultSource, fake: FakeHvac) -> None:
    fake.will("approle.login", requests.exceptions.ConnectionError("down"), _login("tok-1"))
    with pytest.raises(SourceUnavailable, match="cannot connect"):
        source.fetch(_credential())
    assert source.fetch(_credential()).entries[0].password == PASSWORD


def test_unreadable_secret_id_file_is_denied_naming_the_file(source: VaultSource, secret_id_file: Path) -> None:
    secret_id_file.unlink()
    with pytest.raises(SourceDenied, match=r"secret_id_file .*secret-id .*No such file"):
        source.fetch(_credential())
    secret_id_file.write_text("  \n")
    with pytest.raises(SourceDenied, match="is empty"):
        source.fetch(_credential())


@pytest.mark.parametrize("method", ["kubernetes", "jwt"])
def test_jwt_methods_read_the_token_file(fake: FakeHvac, tmp_path: Path, method: str) -> None:
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(JWT)
    operation = "kubernetes.login" if method == "kubernetes" else "jwt.jwt_login"
    fake.will(operation, _login("tok-k"))
    auth = {"method": method, "role": "syncd", "mount": "k8s-prod", "token_file": str(jwt_file)}
    config = VaultConfig.model_validate({"address": "https://vault.test:8200", "auth": auth})
    VaultSource(VaultSession(config, client=fake)).fetch(_credential())
    [login] = fake.named(operation)
    assert login.args == ("syncd", JWT)
    assert login.kwargs == ({"mount_point": "k8s-prod"} if method == "kubernetes" else {"path": "k8s-prod"})


def _token_source(fake: FakeHvac, clock: Clock, token_file: Path | None = None) -> VaultSource:
    auth = {"method": "token", "token_file": str(token_file)} if token_file else {"method": "token"}
    config = VaultConfig.model_validate({"address": "https://vault.test:8200", "auth": auth})
    return VaultSource(VaultSession(config, now=clock, client=fake))


def test_token_from_environment_is_looked_up_once(
    fake: FakeHvac, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "env-token")
    fake.will("lookup_self", {"data": {"ttl": 0, "renewable": False}})
    source = _token_source(fake, clock)
    source.fetch(_credential())
    source.fetch(_credential())
    assert [c.token for c in fake.named("lookup_self")] == ["env-token"]
    assert [c.token for c in fake.named("kv2.read_secret_version")] == ["env-token", "env-token"]


def test_static_token_403_is_denied_without_retry(
    fake: FakeHvac, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "env-token")
    fake.will("lookup_self", {"data": {"ttl": 0, "renewable": False}})
    fake.will("kv2.read_secret_version", _vault_error(hvac.exceptions.Forbidden))
    with pytest.raises(SourceDenied):
        _token_source(fake, clock).fetch(_credential())
    assert len(fake.named("kv2.read_secret_version")) == 1


def test_no_token_anywhere_is_denied(fake: FakeHvac, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    with pytest.raises(SourceDenied, match=r"\$VAULT_TOKEN"):
        _token_source(fake, clock).fetch(_credential())


def test_rotated_token_file_is_read_again_after_403(fake: FakeHvac, clock: Clock, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1\n")
    fake.will("lookup_self", {"data": {"ttl": 0, "renewable": False}})
    fake.will("kv2.read_secret_version", _kv2(GOOD), _vault_error(hvac.exceptions.Forbidden), _kv2(GOOD))
    source = _token_source(fake, clock, token_file)
    source.fetch(_credential())
    token_file.write_text("file-token-2\n")
    source.fetch(_credential())
    assert [c.token for c in fake.named("kv2.read_secret_version")] == ["file-token-1", "file-token-1", "file-token-2"]


API_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
PLAIN_HTTP = "is plain HTTP (vault.allow_http: true)"
HANDS_API_TOKEN = "receives a token the Kubernetes API accepts"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("vault", "expected"),
    [
        ({"address": "https://vault.test:8200"}, []),
        ({"address": "http://vault.test:8200", "allow_http": True}, [PLAIN_HTTP]),
        ({"address": "https://vault.test:8200", "auth": {"method": "kubernetes", "role": "r"}}, [HANDS_API_TOKEN]),
        (
            {
                "address": "https://vault.test:8200",
                "auth": {"method": "kubernetes", "role": "r", "token_file": API_TOKEN},
            },
            [HANDS_API_TOKEN],
        ),
        (
            {
                "address": "http://127.0.0.1:8200",
                "allow_http": True,
                "auth": {"method": "kubernetes", "role": "r", "token_file": "/var/run/secrets/vault/token"},
            },
            [PLAIN_HTTP],
        ),
        ({"address": "https://vault.test:8200", "auth": {"method": "jwt", "role": "r", "token_file": API_TOKEN}}, []),
    ],
    ids=["https", "http-allowed", "kubernetes-default-token", "kubernetes-api-token", "http-projected-token", "jwt"],
)
def test_a_session_warns_about_what_the_config_allows_but_should_not_leave_so(
    fake: FakeHvac, caplog: pytest.LogCaptureFixture, vault: dict[str, Any], expected: list[str]
) -> None:
    caplog.set_level(logging.INFO)
    VaultSession(VaultConfig.model_validate(vault), client=fake)
    warnings = _warnings(caplog)
    assert len(warnings) == len(expected)
    assert all(fragment in warning for fragment, warning in zip(expected, warnings, strict=True))
    assert fake.calls == []  # said at start, before any request


def test_the_api_token_warning_points_at_the_audience_setup(fake: FakeHvac, caplog: pytest.LogCaptureFixture) -> None:
    auth = {"method": "kubernetes", "role": "syncd"}
    VaultSession(VaultConfig.model_validate({"address": "https://vault.test:8200", "auth": auth}), client=fake)
    [warning] = _warnings(caplog)
    assert warning == (
        f"Vault's Kubernetes auth with the pod's own API token ({API_TOKEN}): Vault, and whoever can change "
        "vault.address, receives a token the Kubernetes API accepts. Give syncd a projected ServiceAccount "
        "token with audience `vault` as vault.auth.token_file, and audience=vault on the Vault role"
    )


def test_missing_address_is_unavailable(fake: FakeHvac, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    session = VaultSession(VaultConfig(), client=fake)
    with pytest.raises(SourceUnavailable, match="VAULT_ADDR"):
        VaultSource(session).fetch(_credential())


# --- renewal ------------------------------------------------------------------------------------


def _renewed(ttl: int = 60, renewable: bool = True) -> dict[str, Any]:
    return {"auth": {"client_token": "tok-1", "lease_duration": ttl, "renewable": renewable}}


def test_no_renewal_while_more_than_half_the_ttl_is_left(source: VaultSource, fake: FakeHvac, clock: Clock) -> None:
    source.fetch(_credential())
    clock.advance(29)
    source.fetch(_credential())
    assert not fake.named("renew_self")


def test_renews_once_half_the_ttl_is_gone_and_counts_from_the_renewal(
    source: VaultSource, fake: FakeHvac, clock: Clock
) -> None:
    fake.will("renew_self", _renewed(60))
    source.fetch(_credential())
    clock.advance(31)
    source.fetch(_credential())
    clock.advance(29)  # 60 s after login, 29 s after renewal
    source.fetch(_credential())
    assert len(fake.named("renew_self")) == 1
    assert len(fake.named("approle.login")) == 1


def test_failed_renewal_logs_in_again(source: VaultSource, fake: FakeHvac, clock: Clock) -> None:
    fake.will("approle.login", _login("tok-1"), _login("tok-2"))
    fake.will("renew_self", _vault_error(hvac.exceptions.Forbidden))
    source.fetch(_credential())
    clock.advance(31)
    source.fetch(_credential())
    assert [c.token for c in fake.named("kv2.read_secret_version")] == ["tok-1", "tok-2"]


def test_renewal_capped_by_max_ttl_logs_in_again(source: VaultSource, fake: FakeHvac, clock: Clock) -> None:
    fake.will("approle.login", _login("tok-1"), _login("tok-2"))
    fake.will("renew_self", _renewed(20))
    source.fetch(_credential())
    clock.advance(31)
    source.fetch(_credential())
    assert len(fake.named("renew_self")) == 1
    assert fake.named("kv2.read_secret_version")[-1].token == "tok-2"


def test_expired_token_logs_in_again_without_renewing(source: VaultSource, fake: FakeHvac, clock: Clock) -> None:
    fake.will("approle.login", _login("tok-1"), _login("tok-2"))
    source.fetch(_credential())
    clock.advance(61)
    source.fetch(_credential())
    assert not fake.named("renew_self")
    assert fake.named("kv2.read_secret_version")[-1].token == "tok-2"


def test_non_renewable_token_is_replaced_when_it_expires(source: VaultSource, fake: FakeHvac, clock: Clock) -> None:
    fake.will("approle.login", _login("tok-1", renewable=False), _login("tok-2"))
    source.fetch(_credential())
    clock.advance(45)
    source.fetch(_credential())
    assert not fake.named("renew_self")
    assert len(fake.named("approle.login")) == 1
    clock.advance(16)
    source.fetch(_credential())
    assert len(fake.named("approle.login")) == 2


def test_token_without_ttl_is_never_renewed(fake: FakeHvac, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "root")
    fake.will("lookup_self", {"data": {"ttl": 0, "renewable": False}})
    source = _token_source(fake, clock)
    source.fetch(_credential())
    clock.advance(10 * 365 * 86400)
    source.fetch(_credential())
    assert not fake.named("renew_self")
    assert len(fake.named("lookup_self")) == 1


def test_renewal_connection_error_is_unavailable(source: VaultSource, fake: FakeHvac, clock: Clock) -> None:
    fake.will("renew_self", requests.exceptions.ConnectionError("refused"))
    source.fetch(_credential())
    clock.advance(31)
    with pytest.raises(SourceUnavailable, match="cannot connect"):
        source.fetch(_credential())


# --- what reaches the logs ----------------------------------------------------------------------


def test_logs_carry_no_secret_at_debug(
    source: VaultSource, fake: FakeHvac, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.will("approle.login", _login("tok-1"), _login("tok-2"))
    fake.will("renew_self", _renewed(60))
    fake.will("kv2.read_secret_version", _kv2(GOOD), _vault_error(hvac.exceptions.Forbidden), _kv2(GOOD))
    source.fetch(_credential())
    clock.advance(31)
    source.fetch(_credential())
    assert "logged in to Vault" in caplog.text
    for secret in (PASSWORD, SECRET_ID, "tok-1", "tok-2", "robot@example.com"):
        assert secret not in caplog.text
