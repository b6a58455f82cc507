"""Which kubelet Events are image pulls that failed because of a Secret syncd writes.

The kubelet (Kubernetes 1.34.4) writes two kinds of Warning Event that matter here:

- reason `FailedToRetrieveImagePullSecret`, message `Unable to retrieve some image pull secrets
  (<a>, <b>); attempting to pull the image may not succeed.` (pkg/kubelet/kubelet_pods.go:
  Kubelet.getPullSecretsForPod): a Secret the Pod names is missing or unreadable.
- reason `Failed` (pkg/kubelet/events/event.go: FailedToPullImage), message `Failed to pull image
  "<image>": <the runtime's error>` (pkg/kubelet/images/image_manager.go: imageManager.pullImage).
  Only runtime errors that say the registry refused the login count (AUTH_MARKERS).

client-go's recorder (tools/record/events_cache.go: EventAggregator) may prefix a message with
`(combined from similar events): ` and counts repeats in the Event's `count`. An Event counts
only for a spec that selects its namespace and, for a pull, whose keys serve the image (the
kubelet's own lookup, syncd.registry.kubelet). No namespace or Pod goes into a metric label.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from syncd.config import Config, SecretSpec
from syncd.config.selection import selects
from syncd.core.values import NamespaceInfo, PullFailureReason
from syncd.core.watch_events import FAILED_TO_PULL, SECRET_UNAVAILABLE_REASON, KubeletEvent
from syncd.registry.kubelet import InvalidImage, Keyring, Login, repository

_COMBINED = r"(?:\(combined from similar events\): )?"
_PULL = re.compile(_COMBINED + r'Failed to pull image "((?:[^"\\]|\\.)*)": (.*)', re.DOTALL)
_SECRETS = re.compile(
    _COMBINED + r"Unable to retrieve some image pull secrets \((.*)\); attempting to pull the image may not succeed\.",
    re.DOTALL,
)

# What the container runtime says when the registry refused the credentials (lowercased):
# containerd v2.1 (core/remotes/docker): resolver.go `pull access denied, repository does not
# exist or may require authorization` and ErrInvalidAuthorization `authorization failed`;
# authorizer.go `no basic auth credentials`, `failed to fetch oauth token` / `anonymous token`
# followed by the token server's `401 Unauthorized` / `403 Forbidden`. CRI-O (containers/image
# v5 docker/errors.go) `unable to retrieve auth token: invalid username/password`; registries'
# error codes as distribution's errcode prints them: `unauthorized: authentication required`,
# `denied: requested access to the resource is denied`.
AUTH_MARKERS = (
    "pull access denied",
    "authorization failed",
    "no basic auth credentials",
    "invalid username/password",
    "unauthorized",
    "403 forbidden",
    "requested access to the resource is denied",
)
SEEN_EVENTS = 4096  # client-go's own event cache size (events_cache.go: maxLruCacheEntries)


@dataclass(frozen=True)
class PullFailure:
    secret: str
    registry: str  # the key syncd wrote that serves the image; "" for an unavailable Secret
    reason: PullFailureReason


def is_auth_error(runtime_error: str) -> bool:
    lowered = runtime_error.lower()
    return any(marker in lowered for marker in AUTH_MARKERS)


def pulled_image(message: str) -> str | None:
    """The image of any `Failed to pull image` message, whatever the runtime's error."""
    match = _PULL.fullmatch(message)
    return None if match is None else re.sub(r"\\(.)", r"\1", match.group(1))


def failed_image(message: str) -> str | None:
    """The image of a `Failed to pull image` message whose error is a refused login."""
    match = _PULL.fullmatch(message)
    if match is None or not is_auth_error(match.group(2)):
        return None
    return re.sub(r"\\(.)", r"\1", match.group(1))


def unavailable_secrets(message: str) -> list[str]:
    match = _SECRETS.fullmatch(message)
    return [name.strip() for name in match.group(1).split(",")] if match else []


def spec_keyring(config: Config, spec: SecretSpec) -> Keyring:
    """The keys a spec's Secret holds, as the kubelet indexes them (no source is called)."""
    keyring = Keyring()
    keys = set().union(*(config.auth_keys(name) for name in spec.credentials))
    keyring.add(spec.name, {key: Login(spec.name, key, "", "") for key in keys})
    return keyring


def classify(event: KubeletEvent, config: Config, namespace: NamespaceInfo) -> list[PullFailure]:
    """The failures this Event means for the specs that select its namespace."""
    specs = [spec for spec in config.secrets if selects(spec.namespaces, namespace)]
    if event.reason == SECRET_UNAVAILABLE_REASON:
        missing = set(unavailable_secrets(event.message))
        return [PullFailure(s.name, "", PullFailureReason.SECRET_UNAVAILABLE) for s in specs if s.name in missing]
    image = failed_image(event.message) if event.reason == FAILED_TO_PULL else None
    if image is None:
        return []
    try:
        repo = repository(image)
    except InvalidImage:
        return []
    failures = []
    for spec in specs:
        logins = spec_keyring(config, spec).lookup(repo)
        if logins:
            failures.append(PullFailure(spec.name, logins[0].key, PullFailureReason.AUTH_FAILED))
    return failures


class Occurrences:
    """New occurrences of each Event: the kubelet's recorder patches `count` on repeats."""

    def __init__(self, size: int = SEEN_EVENTS) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def new(self, event: KubeletEvent) -> int:
        with self._lock:
            if event.change == "DELETED":
                self._seen.pop(event.uid, None)
                return 0
            before = self._seen.pop(event.uid, None)
            self._seen[event.uid] = event.count
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
        if before is None:
            # Modified before syncd saw it (a restart, a relist): at least this one occurrence.
            return event.count if event.change == "ADDED" else 1
        return max(0, event.count - before)


class PullFailureCounter:
    """Counts the kubelet's pull-failure Events that concern the running config."""

    def __init__(
        self,
        config: Callable[[], Config],
        namespace: Callable[[str], NamespaceInfo | None],
        record: Callable[[PullFailure, int], None],
        counting: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.namespace = namespace  # read only for Events that may count
        self.record = record
        self.counting = counting  # the leader counts; a standby only follows the occurrences
        self.occurrences = Occurrences()

    def observe(self, event: KubeletEvent) -> list[PullFailure]:
        times = self.occurrences.new(event)
        if times == 0 or not self.counting() or not self._may_count(event):
            return []
        namespace = self.namespace(event.namespace)
        if namespace is None:
            return []
        failures = classify(event, self.config(), namespace)
        for failure in failures:
            self.record(failure, times)
        return failures

    def _may_count(self, event: KubeletEvent) -> bool:
        """Cheap checks first: most Events of these reasons are about other registries."""
        names = {spec.name for spec in self.config().secrets}
        if event.reason == SECRET_UNAVAILABLE_REASON:
            return bool(names & set(unavailable_secrets(event.message)))
        return failed_image(event.message) is not None
