"""The redactor masks what some owner holds, and forgets a value once no owner holds it."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Config, Credential, parse_config
from syncd.core.errors import InvalidCredential
from syncd.core.logs import MASK, REDACTOR, Redactor, install_redaction
from syncd.core.values import FetchedCredential, RegistryCredential
from syncd.engine.fetcher import CredentialFetcher, Freshness
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_held_value_is_masked_and_forgotten_once_released() -> None:
    redactor = Redactor()
    redactor.hold("a", ["hunter22"])
    assert redactor.scrub("password hunter22") == f"password {MASK}"
    redactor.release("a")
    assert not redactor.masks("hunter22")
    assert redactor.scrub("password hunter22") == "password hunter22"


def test_holding_new_values_forgets_the_owners_old_ones() -> None:
    redactor = Redactor()
    redactor.hold("a", ["old-password"])
    redactor.hold("a", ["new-password"])
    assert not redactor.masks("old-password")
    assert redactor.masks("new-password")


def test_a_value_two_owners_hold_stays_masked_until_both_let_go() -> None:
    redactor = Redactor()
    redactor.hold("a", ["shared-pw", "only-a-pw"])
    redactor.hold("b", ["shared-pw"])
    redactor.release("a")
    assert redactor.masks("shared-pw")
    assert not redactor.masks("only-a-pw")
    redactor.hold("b", ["shared-pw"])  # holding the same again counts once
    redactor.release("b")
    assert not redactor.masks("shared-pw")


def test_values_added_without_an_owner_stay_and_short_ones_are_never_masked() -> None:
    redactor = Redactor()
    redactor.add("forever-1", "ab")
    redactor.add("forever-2")
    redactor.hold("a", ["forever-1"])
    redactor.release("a")
    assert redactor.masks("forever-1")
    assert redactor.masks("forever-2")
    assert not redactor.masks("ab")


def test_the_longest_value_is_masked_first() -> None:
    redactor = Redactor()
    redactor.hold("a", ["robot", "robot:pa55word"])
    assert redactor.scrub("auth robot:pa55word") == f"auth {MASK}"


# Through the fetcher and reconciler that own the values.

CREDENTIALS: list[dict[str, object]] = [
    {"name": n, "registry": f"{n}.example", "vault": {"path": n}} for n in ("a", "b")
]
SECRETS = [{"name": "pull-a", "credentials": ["a"], "namespaces": {"names": ["x"]}}]


def _config(credentials: list[dict[str, object]] = CREDENTIALS) -> Config:
    return parse_config({"vault": {"address": "https://vault.invalid"}, "credentials": credentials, "secrets": SECRETS})


class Source:
    """Answers each credential with the password set for it (a fresh random one by default)."""

    kind = "vault"

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}

    def fetch(self, credential: Credential) -> FetchedCredential:
        password = self.passwords.get(credential.name) or f"pw-{uuid.uuid4().hex}"
        entry = RegistryCredential(credential.registry_names[0], "robot", password)
        return FetchedCredential(credential.name, "vault", (entry,))


def _fetcher(source: Source) -> CredentialFetcher:
    return CredentialFetcher({"vault": source}, Metrics(CollectorRegistry()), lambda: T0, verifier=lambda *_: None)


def _fetch(fetcher: CredentialFetcher, *names: str, config: Config | None = None) -> list[str]:
    fetched = fetcher.fetch_all(config or _config(), names, Freshness.per_run(dt.datetime.now(dt.UTC)))
    return [credential.entries[0].password for credential in fetched]


def test_a_rotated_password_is_forgotten_and_the_new_one_masked() -> None:
    fetcher = _fetcher(Source())
    [old] = _fetch(fetcher, "a")
    assert REDACTOR.masks(old)
    assert REDACTOR.masks(f"robot:{old}")
    [new] = _fetch(fetcher, "a")
    assert new != old
    assert REDACTOR.masks(new)
    assert not REDACTOR.masks(old)
    assert not REDACTOR.masks(f"robot:{old}")


def test_a_password_two_credentials_share_stays_masked_when_one_drops_it() -> None:
    source = Source()
    shared = f"shared-{uuid.uuid4().hex}"
    source.passwords = {"a": shared, "b": shared}
    fetcher = _fetcher(source)
    _fetch(fetcher, "a", "b")
    source.passwords = {"b": shared}
    _fetch(fetcher, "a")  # a rotates away from the shared password
    assert REDACTOR.masks(shared)
    fetcher.reconfigure(_config(), _config(CREDENTIALS[:1]), {"vault": source})  # b goes
    assert not REDACTOR.masks(shared)


def test_a_credential_a_reload_removes_is_forgotten() -> None:
    source = Source()
    fetcher = _fetcher(source)
    [password] = _fetch(fetcher, "b")
    fetcher.reconfigure(_config(), _config(CREDENTIALS[:1]), {"vault": source})
    assert not REDACTOR.masks(password)


def test_a_rejected_answer_stays_masked_while_its_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    source = Source()
    fetcher = _fetcher(source)
    [good] = _fetch(fetcher, "a")
    rejected = source.passwords["a"] = f"bad\x07password-{uuid.uuid4().hex}"  # a control character
    with pytest.raises(InvalidCredential) as error:
        _fetch(fetcher, "a")
    logging.getLogger("syncd.test").error("sync failed: %s (got %s)", error.value, rejected)
    assert rejected not in caplog.text
    assert REDACTOR.masks(good)  # the cached answer is still the one in use
    del source.passwords["a"]
    _fetch(fetcher, "a")  # the next attempt lets the rejected one go
    assert not REDACTOR.masks(rejected)


def test_content_rendered_for_a_spec_stays_masked_until_the_spec_renders_again() -> None:
    source = Source()
    reconciler = Reconciler(config=_config(), sources={"vault": source}, cluster=FakeCluster(), metrics=_metrics())
    spec = reconciler.config.secrets[0]
    reconciler.desired(spec, Freshness.per_run(dt.datetime.now(dt.UTC)))
    [rendered] = [e.password for e in reconciler.fetcher.cached("a").entries]  # type: ignore[union-attr]
    _fetch(reconciler.fetcher, "a", config=reconciler.config)  # another spec's job rotates it
    assert REDACTOR.masks(rendered)  # watch-triggered syncs still write it
    reconciler.desired(spec, Freshness.cached())
    assert not REDACTOR.masks(rendered)


def _metrics() -> Metrics:
    return Metrics(CollectorRegistry())
