"""Credentials as the reconciler gets them: fetched once per run, validated, verified, cached.

The cache is what lets watch-triggered syncs write a new namespace's Secret without calling a
source, and what makes a credential shared by several specs cost one call per run. This module
is the one home of the policy deciding when a cached answer will do (`Freshness`).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from syncd.config import Config
from syncd.core.errors import InvalidCredential, SourceError, SyncdError
from syncd.core.logs import REDACTOR
from syncd.core.token_expiry import earliest, jwt_expiry
from syncd.core.values import FetchedCredential, Lease, RegistryCredential
from syncd.engine.leases import LeaseLedger, PendingRevoke
from syncd.engine.metrics import Metrics, Verification
from syncd.engine.timing import Lifetime, refresh_at
from syncd.registry.credential_rules import credential_problems
from syncd.registry.login import VerificationFailed, verify_login
from syncd.sources.base import LeaseHolder, Source

log = logging.getLogger(__name__)

Verifier = Callable[[str, RegistryCredential], None]
# A credential fetched this recently by another spec's job is reused: the jobs of every spec
# start together, and a shared credential should still cost one source call.
SHARED_FETCH_WINDOW = dt.timedelta(seconds=10)
_LONG_AGO = dt.datetime.min.replace(tzinfo=dt.UTC)
# Who holds a value in the redactor: a cached answer, a rejected one (until the next attempt), the
# content last rendered for a spec.
_CACHED, _ATTEMPT, _RENDERED = "cached", "attempt", "rendered"


class NotFetchedYet(SyncdError):
    """A cache-only sync found no fetched credential to work from (the scheduled sync will fetch)."""


class Reuse(enum.Enum):
    CACHED = "cached"  # only the last good answer; never a source call
    RUN = "run"  # an answer from this run, good or bad
    SHARED = "shared"  # a good answer of the last SHARED_FETCH_WINDOW
    KEPT = "kept"  # any good answer


@dataclass(frozen=True)
class Freshness:
    """How old an answer a sync may use. Whatever the kind, a credential due for its expiry
    refresh is fetched again, and, except in `per_run`, a failure is never reused."""

    reuse: Reuse
    started: dt.datetime = _LONG_AGO

    @classmethod
    def cached(cls) -> Freshness:
        """Watch-triggered syncs: the last good credentials, without calling a source."""
        return cls(Reuse.CACHED)

    @classmethod
    def per_run(cls, started: dt.datetime) -> Freshness:
        """`once`: each credential asked once per run, a failure too (a dead Vault is asked once)."""
        return cls(Reuse.RUN, started)

    @classmethod
    def scheduled(cls, started: dt.datetime) -> Freshness:
        """A daemon job: a fresh answer, or one another spec's job fetched moments ago."""
        return cls(Reuse.SHARED, started)

    @classmethod
    def kept(cls, started: dt.datetime) -> Freshness:
        """After a reload: any good answer still cached; only the missing ones are fetched."""
        return cls(Reuse.KEPT, started)

    @property
    def vouches_for_sources(self) -> bool:
        """Whether a good run of this kind shows that its sources answer now. A run that may take
        any cached answer (a watch trigger, a reload) shows nothing of the sort: counted as a
        success, it kept `syncd_last_success_timestamp_seconds` moving through a Vault outage
        under namespace churn, and SyncdSyncFailing never fired (found by the soak)."""
        return self.reuse in (Reuse.RUN, Reuse.SHARED)


@dataclass
class _Cached:
    """The last good answer for a credential, and the last failure (whichever is newer counts)."""

    credential: FetchedCredential | None = None
    fetched_at: dt.datetime | None = None
    error: SourceError | None = None
    failed_at: dt.datetime | None = None


class CredentialFetcher:
    """Fetches credentials, counts every source call, and remembers the answers."""

    def __init__(
        self,
        sources: Mapping[str, Source[Any]],
        metrics: Metrics,
        clock: Callable[[], dt.datetime],
        verifier: Verifier = verify_login,
    ) -> None:
        self.sources = sources
        self.metrics = metrics
        self.clock = clock
        self.verifier = verifier
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        # This fetcher's share of the process-wide redactor: another fetcher (a test's, say) caching
        # a credential of the same name holds its values apart.
        self._masks = object()
        self.leases = LeaseLedger()

    def fetch_all(self, config: Config, names: Iterable[str], freshness: Freshness) -> list[FetchedCredential]:
        """The credentials of one sync, each from the cache or its source as `freshness` allows."""
        names = list(names)
        if freshness.reuse is Reuse.CACHED:
            return [self._cached_only(name) for name in names]
        fresh_after, failed_after = self._bounds(config, names, freshness)
        return [self._fetch(config, name, fresh_after, failed_after) for name in names]

    def _bounds(self, config: Config, names: list[str], freshness: Freshness) -> tuple[dt.datetime, dt.datetime]:
        """(fresh_after, failed_after): a good answer older than the first, or a failure older than
        the second, is asked for again. One credential due for refresh refreshes the whole spec."""
        started = freshness.started
        if freshness.reuse is Reuse.RUN or self._refresh_due(config, names, started):
            return started, started
        oldest = started - SHARED_FETCH_WINDOW if freshness.reuse is Reuse.SHARED else _LONG_AGO
        return oldest, started

    def _refresh_due(self, config: Config, names: list[str], now: dt.datetime) -> bool:
        fraction = config.schedule.refresh_before_expiry
        return any(now >= refresh_at(fetched, expires, fraction) for fetched, expires in self.lifetimes(names))

    def _cached_only(self, name: str) -> FetchedCredential:
        credential = self.cached(name)
        if credential is None:
            raise NotFetchedYet(f"credential {name!r} has not been fetched yet")
        return credential

    def _fetch(
        self, config: Config, name: str, fresh_after: dt.datetime, failed_after: dt.datetime
    ) -> FetchedCredential:
        with self._lock:
            cached = self._cache.setdefault(name, _Cached())
        if cached.failed_at is not None and cached.failed_at >= failed_after and cached.error is not None:
            raise cached.error
        if cached.credential is None or cached.fetched_at is None or cached.fetched_at < fresh_after:
            return self._refresh(config, name, cached)
        return cached.credential

    def reconfigure(self, old: Config, new: Config, sources: Mapping[str, Source[Any]]) -> None:
        """Take a reloaded config's sources; forget only the answers it may have changed: those of
        credentials whose entry changed or went, and of every Vault one when `vault:` changed."""
        with self._lock:
            self.sources = sources
            for name in [n for n in self._cache if _changed(old, new, n)]:
                del self._cache[name]
                REDACTOR.release((self._masks, _CACHED, name))
                REDACTOR.release((self._masks, _ATTEMPT, name))

    def mask_rendered(self, spec: str, credentials: Iterable[FetchedCredential]) -> None:
        """Keep the secret values of the content last rendered for `spec` masked while it may still
        be written (watch-triggered syncs write it without fetching), whatever the cache holds."""
        REDACTOR.hold((self._masks, _RENDERED, spec), secret_values(credentials))

    def unmask_rendered(self, spec: str) -> None:
        REDACTOR.release((self._masks, _RENDERED, spec))

    def cached(self, name: str) -> FetchedCredential | None:
        cached = self._cache.get(name)
        return cached.credential if cached is not None else None

    def fetched_at(self, name: str) -> dt.datetime | None:
        """When the cached answer for `name` was fetched (None: nothing cached)."""
        cached = self._cache.get(name)
        return cached.fetched_at if cached is not None and cached.credential is not None else None

    def lifetimes(self, names: Iterable[str]) -> list[Lifetime]:
        """(fetched_at, expires_at) of each cached credential that says when it expires."""
        found = []
        for name in names:
            cached = self._cache.get(name, _Cached())
            expires_at = cached.credential.expires_at if cached.credential is not None else None
            if cached.fetched_at is not None and expires_at is not None:
                found.append((cached.fetched_at, expires_at))
        return found

    def _refresh(self, config: Config, name: str, cached: _Cached) -> FetchedCredential:
        started = self.clock()
        renewed = self._renewed(config, name, cached.credential, started)
        if renewed is not None:
            with self._lock:
                cached.credential, cached.fetched_at = renewed, started
            return renewed
        try:
            credential = self._fetch_and_check(config, name)
        except SourceError as exc:
            cached.error, cached.failed_at = exc, started
            raise
        with self._lock:
            previous = cached.credential
            cached.credential, cached.fetched_at = credential, started
            if self._cache.get(name) is cached:
                self.leases.replaced(config, previous, credential)
            # The answer it replaces is forgotten, unless another credential or rendered content holds
            # it. An entry a reload dropped meanwhile holds nothing (nothing would release it), and
            # leaves the masks of the entry that replaced it alone.
            if self._cache.get(name) is cached:
                REDACTOR.hold((self._masks, _CACHED, name), secret_values([credential]))
                REDACTOR.release((self._masks, _ATTEMPT, name))
        return credential

    def _renewed(
        self, config: Config, name: str, current: FetchedCredential | None, now: dt.datetime
    ) -> FetchedCredential | None:
        """The cached login with its lease renewed, instead of a new login: None when it cannot be
        (no renewable lease, an expiry it does not set alone) or Vault granted less than the
        lease's duration (its max TTL is near: a new login then, as without a lease)."""
        credential = config.credential(name)
        source = self.sources.get(credential.source)
        lease = current.lease if current is not None else None
        if current is None or lease is None or not _renewal_applies(credential, lease, source):
            return None
        assert isinstance(source, LeaseHolder)  # noqa: S101 - checked by _renewal_applies, for mypy
        try:
            granted = source.renew(credential, lease)
        except SourceError as exc:
            log.info("renewing the lease of credential %s failed (%s); reading a new login", name, exc)
            self.metrics.record_lease_renewal(name, ok=False)
            return None
        if granted.duration < lease.duration:
            # The max TTL is near: the lease runs out sooner than asked. It stays the previous lease
            # of the new login, and is revoked once that is everywhere.
            self.metrics.record_lease_renewal(name, ok=False)
            log.info("the lease of credential %s is near its max TTL; reading a new login", name)
            return None
        self.metrics.record_lease_renewal(name, ok=True)
        renewed = _with_token_expiry(replace(current, lease=granted, expires_at=now + granted.duration), now)
        if renewed.expires_at is not None:
            self.metrics.set_expiry(name, renewed.expires_at)
        return renewed

    def rolled_out(self, spec: str, rendered: Iterable[FetchedCredential]) -> None:
        """`spec` wrote `rendered` to every namespace it selects, without a failed write: revoke the
        replaced leases no spec holds any more."""
        for pending in self.leases.rolled_out(spec, rendered):
            self._revoke(pending)

    def _revoke(self, pending: PendingRevoke) -> None:
        name = pending.credential.name
        source = self.sources.get(pending.credential.source)
        try:
            if not isinstance(source, LeaseHolder):
                raise InvalidCredential(name, "its source cannot revoke leases any more (reloaded)")
            source.revoke(pending.credential, pending.lease)
        except SourceError as exc:
            # Not retried: the login it leases stays valid until its TTL ends (docs/runbooks.md).
            log.warning("revoking the previous lease of credential %s failed: %s", name, exc)
            self.metrics.record_lease_revocation(name, ok=False)
        else:
            log.info("revoked the previous lease of credential %s: no Secret holds its login any more", name)
            self.metrics.record_lease_revocation(name, ok=True)
        finally:
            self.leases.done(pending)

    def _fetch_and_check(self, config: Config, name: str) -> FetchedCredential:
        credential = config.credential(name)
        try:
            fetched = self.sources[credential.source].fetch(credential)
            # Masked before anything can fail: a rejected answer's values stay masked until the next
            # attempt, however late its error is logged.
            REDACTOR.hold((self._masks, _ATTEMPT, name), secret_values([fetched]))
            # An unusable answer (an empty password, control characters, a token already expired) is
            # a failed request, as when the source itself finds it malformed: the runbooks read
            # this counter for "which source".
            _validate(fetched)
            fetched = _with_token_expiry(fetched, self.clock())
        except SourceError:
            self.metrics.record_source_request(name, credential.source, ok=False)
            raise
        self.metrics.record_source_request(name, credential.source, ok=True)
        if credential.verify:
            self._verify(fetched)
        if fetched.expires_at is not None:
            self.metrics.set_expiry(name, fetched.expires_at)
        return fetched

    def _verify(self, fetched: FetchedCredential) -> None:
        """Ask each registry whether the fresh login works; a rejected one is never rolled out."""
        for entry in fetched.entries:
            try:
                self.verifier(fetched.name, entry)
            except VerificationFailed:
                self.metrics.record_verification(fetched.name, Verification.REJECTED)
                raise
            except SourceError:
                self.metrics.record_verification(fetched.name, Verification.UNAVAILABLE)
                raise
            self.metrics.record_verification(fetched.name, Verification.SUCCESS)


def secret_values(credentials: Iterable[FetchedCredential]) -> list[str]:
    """What the redactor masks of each login: the password, `username:password` as a basic auth
    header or a URL carries it, and its lease id (which revokes or renews it)."""
    credentials = list(credentials)
    entries = [entry for credential in credentials for entry in credential.entries]
    leases = [c.lease.id for c in credentials if c.lease is not None and c.lease.id]
    return [value for e in entries for value in (e.password, f"{e.username}:{e.password}")] + leases


def _renewal_applies(credential: Any, lease: Lease, source: object) -> bool:
    """A renewable lease of a source that renews, whose duration alone sets the login's expiry
    (a `lifetime` or an expiry field would not move with a renewal)."""
    vault = getattr(credential, "vault", None)
    own_expiry = credential.lifetime is not None or (
        vault is not None and (vault.expires_at_field is not None or vault.ttl_field is not None)
    )
    return lease.renewable and bool(lease.id) and not own_expiry and isinstance(source, LeaseHolder)


def _changed(old: Config, new: Config, name: str) -> bool:
    before = next((c for c in old.credentials if c.name == name), None)
    after = next((c for c in new.credentials if c.name == name), None)
    if before is None or after is None or before != after:
        return True
    return after.source == "vault" and old.vault != new.vault


def _with_token_expiry(fetched: FetchedCredential, now: dt.datetime) -> FetchedCredential:
    """The earliest of the source's lease or `lifetime` and the tokens' own `exp`; an expired token
    is refused here, so that nothing is written from it."""
    tokens = [(entry, jwt_expiry(entry.password)) for entry in fetched.entries]
    for entry, expires in tokens:
        if expires is not None and expires <= now:
            stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise InvalidCredential(fetched.name, f"registry {entry.registry!r}: the token expired at {stamp}")
    expires_at = earliest(fetched.expires_at, *(expires for _, expires in tokens))
    return fetched if expires_at == fetched.expires_at else replace(fetched, expires_at=expires_at)


def _validate(fetched: FetchedCredential) -> None:
    """SPEC §1.2: an invalid credential is an error, never an empty entry."""
    if not fetched.entries:
        raise InvalidCredential(fetched.name, "the source returned no registry entries")
    for entry in fetched.entries:
        problems = credential_problems(entry)
        if problems:
            raise InvalidCredential(fetched.name, f"registry {entry.registry!r}: {'; '.join(problems)}")
