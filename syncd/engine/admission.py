"""Pure: the admission webhook's answer to one AdmissionReview of a Pod CREATE (issue 22).

The ServiceAccount admission plugin copies a ServiceAccount's `imagePullSecrets` into a Pod once,
at creation: a Pod created before syncd linked its Secret to the ServiceAccount never gets it.
The webhook closes that race by appending, itself, the Secret of every spec that selects the
Pod's namespace and lists the Pod's ServiceAccount, whether or not the Secret exists yet (the
kubelet reads pull Secrets again on every retry).

What may be added is decided from the config and syncd's own knowledge only: the namespace is the
request's (the apiserver's word, never the object's), the names are the config's spec names. The
Pod's own entries are never removed or reordered; a name it lists already is not added twice. A
namespace where the name is a Secret syncd does not own (a conflict) gets nothing from that spec.

Every malformed input ends as an `Answer` with result `error`, never an exception: the answer to
a review with a uid is still a valid AdmissionReview (allowed, unpatched: `failurePolicy: Ignore`
is the contract), and without a uid there is nothing to answer but a 400.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.config import Config, SecretSpec
from syncd.config.models import INJECT_LABEL
from syncd.config.selection import selects
from syncd.core.values import NamespaceInfo

REVIEW_VERSION = "admission.k8s.io/v1"
POD = {"group": "", "version": "v1", "kind": "Pod"}
DEFAULT_SERVICE_ACCOUNT = "default"


class AdmissionResult(enum.StrEnum):
    """syncd_admission_requests_total `result`."""

    PATCHED = "patched"  # at least one Secret appended
    UNCHANGED = "unchanged"  # a spec applies, and the Pod lists every Secret already
    SKIPPED = "skipped"  # no spec applies: unselected namespace, ServiceAccount not listed, opted out, conflict
    ERROR = "error"  # not a Pod CREATE review syncd can read: answered allowed, unpatched


@dataclass(frozen=True)
class Answer:
    """What to send back: `status` 200 with an AdmissionReview, or 400 with a text (no uid to answer)."""

    result: AdmissionResult
    status: int
    body: bytes
    reason: str = ""
    added: tuple[str, ...] = ()


class Knowledge:
    """What the webhook knows of the cluster, from memory only (the watch stores, the last syncs)."""

    def __init__(self, namespace: Callable[[str], NamespaceInfo | None], conflict: Callable[[str, str], bool]) -> None:
        self.namespace = namespace  # by name; None when not (yet) seen
        self.conflict = conflict  # (secret name, namespace): a Secret of that name syncd does not own


class Malformed(Exception):
    """The review cannot be read; the message is safe to return (names fields, never their values)."""


@dataclass(frozen=True)
class Review:
    """A readable review of a Pod CREATE: its uid, the Pod, and the namespace the apiserver names."""

    uid: str
    pod: dict[str, Any]
    namespace: str


def answer(body: bytes, config: Config, known: Knowledge) -> Answer:
    """`read`, then `decide`: the whole answer to one request body."""
    review = read(body)
    return review if isinstance(review, Answer) else decide(review, config, known)


def read(body: bytes) -> Review | Answer:
    """The review, or the error answer to a body that is not one."""
    try:
        review = json.loads(body)
    except (ValueError, RecursionError):
        return _refused("the body is not JSON")
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    if not isinstance(request, dict) or not isinstance(uid, str) or not uid:
        return _refused("not an AdmissionReview with a request uid")
    try:
        pod, namespace = _pod_create(review, request)
    except Malformed as exc:
        return _allowed(uid, AdmissionResult.ERROR, reason=str(exc))
    return Review(uid, pod, namespace)


def decide(review: Review, config: Config, known: Knowledge) -> Answer:
    try:
        return _decide(review.uid, review.pod, review.namespace, config, known)
    except Malformed as exc:
        return _allowed(review.uid, AdmissionResult.ERROR, reason=str(exc))


def _pod_create(review: dict[str, Any], request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if review.get("apiVersion") != REVIEW_VERSION or review.get("kind") != "AdmissionReview":
        raise Malformed(f"not an {REVIEW_VERSION} AdmissionReview")
    if request.get("kind") != POD or request.get("subResource"):
        raise Malformed("not a review of a Pod")
    if request.get("operation") != "CREATE":
        raise Malformed("not a CREATE")
    pod, namespace = request.get("object"), request.get("namespace")
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        raise Malformed("the review has no Pod object with a spec")
    if not isinstance(namespace, str) or not namespace:
        raise Malformed("the review names no namespace")
    return pod, namespace


def _decide(uid: str, pod: dict[str, Any], namespace: str, config: Config, known: Knowledge) -> Answer:
    if _opted_out(pod.get("metadata")):
        return _allowed(uid, AdmissionResult.SKIPPED, reason=f"the Pod is labelled {INJECT_LABEL}=false")
    info = known.namespace(namespace)
    if info is None:
        return _allowed(uid, AdmissionResult.SKIPPED, reason="namespace not known yet")
    if info.labels.get(INJECT_LABEL) == "false":
        return _allowed(uid, AdmissionResult.SKIPPED, reason=f"the namespace is labelled {INJECT_LABEL}=false")
    wanted = [s.name for s in config.secrets if _serves(s, info, service_account(pod["spec"]), known)]
    if not wanted:
        return _allowed(uid, AdmissionResult.SKIPPED, reason="no secret spec serves this Pod")
    listed = _listed_names(pod["spec"].get("imagePullSecrets"))
    added = tuple(name for name in dict.fromkeys(wanted) if name not in listed)
    if not added:
        return _allowed(uid, AdmissionResult.UNCHANGED)
    patch = _patch(pod["spec"].get("imagePullSecrets"), added)
    return _allowed(uid, AdmissionResult.PATCHED, patch=patch, added=added)


def _serves(spec: SecretSpec, namespace: NamespaceInfo, account: str, known: Knowledge) -> bool:
    listed = "*" in spec.service_accounts or account in spec.service_accounts
    return listed and selects(spec.namespaces, namespace) and not known.conflict(spec.name, namespace.name)


def service_account(spec: Mapping[str, Any]) -> str:
    """The Pod's ServiceAccount: empty means `default`, as the ServiceAccount plugin reads it."""
    name = spec.get("serviceAccountName") or spec.get("serviceAccount")
    return name if isinstance(name, str) and name else DEFAULT_SERVICE_ACCOUNT


def _opted_out(metadata: object) -> bool:
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return isinstance(labels, dict) and labels.get(INJECT_LABEL) == "false"


def _listed_names(entries: object) -> set[str]:
    if entries is None:
        return set()
    if not isinstance(entries, list):
        raise Malformed("spec.imagePullSecrets is not a list")
    return {entry["name"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("name"), str)}


def _patch(entries: list[Any] | None, added: tuple[str, ...]) -> list[dict[str, Any]]:
    """Appends only: an absent (or null) list is added whole, an existing one gets `-` appends."""
    if not entries:
        return [{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": n} for n in added]}]
    return [{"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": n}} for n in added]


def _allowed(
    uid: str,
    result: AdmissionResult,
    *,
    reason: str = "",
    patch: list[dict[str, Any]] | None = None,
    added: tuple[str, ...] = (),
) -> Answer:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    review = {"apiVersion": REVIEW_VERSION, "kind": "AdmissionReview", "response": response}
    return Answer(result, 200, json.dumps(review, separators=(",", ":")).encode(), reason, added)


def _refused(reason: str) -> Answer:
    return Answer(AdmissionResult.ERROR, 400, (reason + "\n").encode(), reason)
