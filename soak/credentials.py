"""The credentials the soak hands to syncd, generation by generation, and where they live.

The ledger keeps, per credential, which generation each password is (by its SHA-256: the
observer judges a Secret by generation and never prints or stores a value), and the current
value, to refill an OpenBao that came back empty.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass

import hvac
import hvac.exceptions

from harness.credhelper import CredentialHelper
from harness.vault import Vault
from harness.wait import wait_until
from soak.settings import CREDENTIALS, CredentialPlan

USERNAME = "soak-robot"


def digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass
class Generation:
    number: int
    published_at: float  # wall clock (time.time())


class Ledger:
    """Generations of every credential; thread-safe (the rotator writes, the observer reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_digest: dict[tuple[str, str], int] = {}
        self._current: dict[str, tuple[Generation, str]] = {}
        self._history: dict[str, list[Generation]] = {}

    def new_value(self, credential: str) -> tuple[int, str]:
        """The next generation's number and a fresh value (not yet current: see `published`)."""
        with self._lock:
            number = self._current[credential][0].number + 1 if credential in self._current else 1
        return number, f"soak-{credential}-g{number}-{uuid.uuid4().hex}"

    def published(self, credential: str, number: int, value: str) -> None:
        with self._lock:
            self._by_digest[(credential, digest(value))] = number
            self._current[credential] = (Generation(number, time.time()), value)
            self._history.setdefault(credential, []).append(self._current[credential][0])

    def current_at(self, credential: str, when: float) -> int:
        """The generation that was current at `when` (0 before the first)."""
        with self._lock:
            return max((g.number for g in self._history.get(credential, []) if g.published_at <= when), default=0)

    def generation_of(self, credential: str, password: str) -> int | None:
        with self._lock:
            return self._by_digest.get((credential, digest(password)))

    def history(self) -> dict[str, list[tuple[int, float]]]:
        """Every generation of every credential and when it was published (for the results)."""
        with self._lock:
            return {name: [(g.number, g.published_at) for g in items] for name, items in self._history.items()}

    def current(self, credential: str) -> Generation:
        with self._lock:
            return self._current[credential][0]

    def current_value(self, credential: str) -> str:
        with self._lock:
            return self._current[credential][1]


class CredentialStore:
    """Writes a generation to its source: OpenBao KV v2, or the pass store behind the helper."""

    def __init__(self, vault: Vault, helper: CredentialHelper, ledger: Ledger) -> None:
        self.vault = vault
        self.helper = helper
        self.ledger = ledger
        # Held by whoever decides to rotate (the rotation loop, a fault starting), so that two
        # never rotate one credential twice before the first generation has converged.
        self.turn = threading.Lock()

    def rotate(self, plan: CredentialPlan) -> int:
        """Publish a new generation; the ledger learns it only once the source holds it."""
        number, value = self.ledger.new_value(plan.name)
        self._write(plan, value)
        self.ledger.published(plan.name, number, value)
        return number

    def rotate_vault(self) -> None:
        """A new generation of every Vault credential (into an OpenBao that came back empty)."""
        for plan in CREDENTIALS:
            if plan.source == "vault":
                self.rotate(plan)

    def refill(self) -> None:
        """Every Vault credential's current generation, into an OpenBao that came back empty."""
        for plan in CREDENTIALS:
            if plan.source == "vault":
                self._write(plan, self.ledger.current_value(plan.name))

    def _write(self, plan: CredentialPlan, value: str) -> None:
        if plan.source == "vault":
            bao = hvac.Client(url=self.vault.address, token=self.vault.token)
            secret = {"username": USERNAME, "password": value}
            wait_until(lambda: _written(bao, plan.vault_path, secret), 30, f"writing {plan.vault_path} to OpenBao")
        else:
            self.helper.store(plan.registry, USERNAME, value)

    def read_vault_generation(self, plan: CredentialPlan) -> int | None:
        """What OpenBao holds now, as a generation (None: empty or unknown): the observer's cross-check."""
        bao = hvac.Client(url=self.vault.address, token=self.vault.token)
        try:
            data = bao.secrets.kv.v2.read_secret_version(plan.vault_path, raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            return None
        return self.ledger.generation_of(plan.name, str(data["data"]["data"]["password"]))


def _written(bao: hvac.Client, path: str, secret: dict[str, str]) -> bool:
    """One write; False while a restarted dev server's KV v2 mount still upgrades (it answers 400
    "Upgrading from non-versioned to versioned data" for a moment after a restart)."""
    try:
        bao.secrets.kv.v2.create_or_update_secret(path, secret=secret)
    except hvac.exceptions.InvalidRequest as exc:
        if "Upgrading from non-versioned to versioned data" in str(exc):
            return False
        raise
    return True
