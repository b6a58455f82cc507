"""The Source protocol every credential source implements, and what they share."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, TypeVar

from syncd.config import Credential
from syncd.core.values import FetchedCredential

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


def expiry(credential: Credential, *, now: dt.datetime, lease: dt.timedelta | None = None) -> dt.datetime | None:
    """When a fetched credential stops working: the configured lifetime wins over a source lease."""
    lifetime = credential.lifetime or lease
    return now + lifetime if lifetime else None
