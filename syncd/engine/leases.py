"""The leases of replaced logins, until every Secret holding them holds the new login.

A dynamic engine (Vault's kubernetes, database, Harbor plugin...) makes an identity per lease and
deletes it when the lease is revoked. Revoking the previous lease as soon as a new login is read
would break every namespace still holding it; never revoking it leaves the issuer full of
identities until their TTL ends. So a replaced lease waits here, "pending revoke", for every secret
spec using its credential to finish a whole-spec sync that wrote a newer login everywhere it
selects, without a failed write; then it is revoked, once.

Only in memory, on purpose: a restart forgets the pending leases, so that it never revokes one that
Secrets may still hold (it cannot know what they hold); shutdown revokes nothing (a standby may take
over the Secrets as they are). A forgotten lease ends at its TTL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from syncd.config import Config, Credential
from syncd.core.logs import REDACTOR
from syncd.core.values import FetchedCredential, Lease


@dataclass
class PendingRevoke:
    """A replaced lease and the specs that may still hold its login in some namespace."""

    credential: Credential
    lease: Lease
    waiting: set[str] = field(default_factory=set)


class LeaseLedger:
    """Thread-safe: the jobs of several specs report their rollouts concurrently."""

    def __init__(self) -> None:
        self._pending: dict[str, list[PendingRevoke]] = {}
        self._lock = threading.Lock()

    def replaced(self, config: Config, old: FetchedCredential | None, new: FetchedCredential) -> None:
        """`new` replaced `old` in the cache: the old lease waits for every spec using the credential."""
        if old is None or old.lease is None or not old.lease.id:
            return
        if new.lease is not None and new.lease.id == old.lease.id:
            return  # renewed, or the same answer: nothing to revoke
        credential = config.credential(new.name)
        if not getattr(getattr(credential, "vault", None), "revoke_previous", False):
            return
        specs = {spec.name for spec in config.secrets if new.name in spec.credentials}
        pending = PendingRevoke(credential, old.lease, specs)
        # Masked until revoked or forgotten: a lease id revokes the login, like a password.
        REDACTOR.hold((self, old.lease.id), [old.lease.id])
        with self._lock:
            self._pending.setdefault(new.name, []).append(pending)

    def rolled_out(self, spec: str, rendered: Iterable[FetchedCredential]) -> list[PendingRevoke]:
        """`spec` wrote `rendered` to every namespace it selects without a failed write: it holds
        no other lease of these credentials. Returns the leases no spec holds any more (taken off
        the ledger: each is revoked once, whatever the outcome)."""
        held: Mapping[str, str] = {c.name: c.lease.id if c.lease is not None else "" for c in rendered}
        due: list[PendingRevoke] = []
        with self._lock:
            for name, lease_id in held.items():
                kept: list[PendingRevoke] = []
                for pending in self._pending.get(name, []):
                    if pending.lease.id != lease_id:
                        pending.waiting.discard(spec)
                    (kept if pending.waiting else due).append(pending)
                if name in self._pending:
                    self._pending[name] = kept
        return due

    def done(self, pending: PendingRevoke) -> None:
        """The lease was revoked, or its revocation failed: stop masking what revokes nothing more."""
        REDACTOR.release((self, pending.lease.id))

    def pending(self, credential: str) -> int:
        """How many replaced leases of `credential` still wait (tests, logs)."""
        with self._lock:
            return len(self._pending.get(credential, []))
