"""What the watches report: one small typed value per change, parsed once at the watch edge.

syncd.kube.watches turns each event's object into one of these; everything above routes
them without knowing the API's JSON. A Secret event carries ownership and hashes, never data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncd.core.values import ExistingSecret, NamespaceInfo, ServiceAccountRef

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


# The reasons of the kubelet's image-pull Events that syncd watches (syncd.engine.pull_failures).
FAILED_TO_PULL = "Failed"
SECRET_UNAVAILABLE_REASON = "FailedToRetrieveImagePullSecret"  # noqa: S105 (an Event reason)
KUBELET_REASONS = (FAILED_TO_PULL, SECRET_UNAVAILABLE_REASON)


@dataclass(frozen=True)
class KubeletEvent:
    """A core/v1 Event the kubelet wrote about a Pod's image pull (syncd.engine.pull_failures)."""

    change: Change
    uid: str
    namespace: str
    reason: str
    message: str
    count: int  # occurrences so far: the kubelet's recorder patches repeats onto one Event
    pod: str = ""  # the involved Pod's name and uid (repair_pods: which Pod to look at)
    pod_uid: str = ""


WatchEvent = NamespaceEvent | SecretEvent | ServiceAccountEvent | KubeletEvent
