"""The Source protocol every credential source implements, and what they share."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, TypeVar, runtime_checkable

from syncd.config import Credential
from syncd.core.values import FetchedCredential, Lease

CredentialT_contra = TypeVar("CredentialT_contra", contravariant=True)


class Source(Protocol[CredentialT_contra]):
    """Fetches one configured credential. One call per credential per sync, whatever the namespaces.

    Raises `CredentialNotFound` when the source answered but holds nothing there,
    `SourceUnavailable` when it could not be reached, `SourceDenied` when it refused us, and
    `InvalidCredential` when what it holds is not a registry login. Messages name the
    credential and the place (path, helper, file), never a value.
    """

    kind: str  # the `source` label of syncd_source_requests_total: vault / helper / docker_config

    def fetch(self, credential: CredentialT_contra) -> FetchedCredential: ...


@runtime_checkable
class LeaseHolder(Protocol[CredentialT_contra]):
    """A source whose logins may come with a lease (Vault's dynamic engines). Both raise SourceError
    subclasses whose messages never carry the lease id."""

    def revoke(self, credential: CredentialT_contra, lease: Lease) -> None: ...

    def renew(self, credential: CredentialT_contra, lease: Lease) -> Lease:
        """Ask for the lease's full duration again; the answer says what was granted."""
        ...


def expiry(credential: Credential, *, now: dt.datetime, lease: dt.timedelta | None = None) -> dt.datetime | None:
    """When a fetched credential stops working: the configured lifetime wins over a source lease."""
    lifetime = credential.lifetime or lease
    return now + lifetime if lifetime else None
