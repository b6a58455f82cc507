"""Credentials as the reconciler gets them: fetched once per run, validated, verified, cached.

The cache is what lets watch-triggered syncs write a new namespace's Secret without calling a
source, and what makes a credential shared by several specs cost one call per run.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.config import Config
from syncd.errors import InvalidCredential, SourceError, SyncdError
from syncd.logs import REDACTOR
from syncd.metrics import Metrics, Verification
from syncd.model import FetchedCredential, RegistryCredential
from syncd.sources.base import Source
from syncd.validation import credential_problems
from syncd.verify import VerificationFailed, verify_login

Verifier = Callable[[str, RegistryCredential], None]


class NotFetchedYet(SyncdError):
    """A cache-only sync found no fetched credential to work from (the scheduled sync will fetch)."""


@dataclass
class _Cached:
    """The last good answer for a credential, and the last failure (whichever is newer counts)."""

    credential: FetchedCredential | None = None
    fetched_at: dt.datetime | None = None
    error: SourceError | None = None
    failed_at: dt.datetime | None = None


class CredentialFetcher:
    """Fetches credentials, counts every source call, and remembers the answers.

    `fresh_after` says how old an answer may be: `once` passes its start time, so a credential
    shared by several specs is fetched once per run (a failure too: a dead Vault is asked once);
    watch-triggered syncs pass None and use the last good credential without calling a source.
    """

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

    def fetch(
        self, config: Config, name: str, *, fresh_after: dt.datetime | None, failed_after: dt.datetime | None = None
    ) -> FetchedCredential:
        """`failed_after` (default `fresh_after`): a failure newer than this is reused, not retried."""
        with self._lock:
            cached = self._cache.setdefault(name, _Cached())
        if fresh_after is None:
            if cached.credential is None:
                raise NotFetchedYet(f"credential {name!r} has not been fetched yet")
            return cached.credential
        failed_after = failed_after or fresh_after
        if cached.failed_at is not None and cached.failed_at >= failed_after and cached.error is not None:
            raise cached.error
        if cached.credential is None or cached.fetched_at is None or cached.fetched_at < fresh_after:
            return self._refresh(config, name, cached)
        return cached.credential

    def cached(self, name: str) -> FetchedCredential | None:
        cached = self._cache.get(name)
        return cached.credential if cached is not None else None

    def fetched_at(self, name: str) -> dt.datetime | None:
        cached = self._cache.get(name)
        return cached.fetched_at if cached is not None else None

    def _refresh(self, config: Config, name: str, cached: _Cached) -> FetchedCredential:
        started = self.clock()
        try:
            credential = self._fetch_and_check(config, name)
        except SourceError as exc:
            cached.error, cached.failed_at = exc, started
            raise
        cached.credential, cached.fetched_at = credential, started
        return credential

    def _fetch_and_check(self, config: Config, name: str) -> FetchedCredential:
        credential = config.credential(name)
        try:
            fetched = self.sources[credential.source].fetch(credential)
            for entry in fetched.entries:
                REDACTOR.add(entry.password, f"{entry.username}:{entry.password}")
            # An unusable answer (an empty password, control characters) is a failed request, as
            # when the source itself finds it malformed: the runbooks read this counter for "which source".
            _validate(fetched)
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


def _validate(fetched: FetchedCredential) -> None:
    """SPEC §1.2: an invalid credential is an error, never an empty entry."""
    if not fetched.entries:
        raise InvalidCredential(fetched.name, "the source returned no registry entries")
    for entry in fetched.entries:
        problems = credential_problems(entry)
        if problems:
            raise InvalidCredential(fetched.name, f"registry {entry.registry!r}: {'; '.join(problems)}")
