"""What the watches report: one small typed value per change, parsed once at the watch edge.

syncd.kube.watches turns each event's object into one of these; everything above routes
them without knowing the API's JSON. A Secret event carries ownership and hashes, never data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncd.model import ExistingSecret, ServiceAccountRef
from syncd.selection import NamespaceInfo

Change = Literal["ADDED", "MODIFIED", "DELETED"]
CHANGES: tuple[Change, ...] = ("ADDED", "MODIFIED", "DELETED")


@dataclass(frozen=True)
class NamespaceEvent:
    change: Change
    namespace: NamespaceInfo


@dataclass(frozen=True)
class SecretEvent:
    """A syncd-labelled Secret named like a spec, of this or another installation."""

    change: Change
    secret: ExistingSecret


@dataclass(frozen=True)
class ServiceAccountEvent:
    change: Change
    account: ServiceAccountRef


WatchEvent = NamespaceEvent | SecretEvent | ServiceAccountEvent
