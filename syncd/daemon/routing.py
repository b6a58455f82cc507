"""Watch routing: which re-syncs a typed watch event asks for, and which watches a config needs.

Pure decisions over the running config; the trigger queue runs what they ask for. A key is
(spec, namespace) for one namespace, or (spec, None) for the whole spec (syncd.daemon.triggers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from syncd.config import Config
from syncd.config.selection import selects
from syncd.core.values import DesiredSecret, Ownership
from syncd.core.watch_events import KubeletEvent, NamespaceEvent, SecretEvent, ServiceAccountEvent, WatchEvent
from syncd.daemon.triggers import Key


class WatchRouter:
    """Turns watch events into re-sync requests for the config `config()` returns now."""

    def __init__(self, config: Callable[[], Config], desired: Callable[[str], DesiredSecret | None]) -> None:
        self.config = config
        self.desired = desired  # what the spec's last sync rendered, None before its first
        self._listed: set[str] = set()
        self._lock = threading.Lock()

    def route(self, event: WatchEvent) -> list[Key]:
        if isinstance(event, NamespaceEvent):
            return self._namespace(event)
        if isinstance(event, SecretEvent):
            return self._secret(event)
        if isinstance(event, KubeletEvent):
            return []  # counted (syncd.engine.pull_failures), never a reason to sync
        return self._service_account(event)

    def _namespace(self, event: NamespaceEvent) -> list[Key]:
        """A namespace now selected gets a sync of that namespace alone; one modified out of a
        spec's selection gets a whole-spec sync, which prunes it if need be."""
        if event.change == "DELETED":
            return []
        keys: list[Key] = []
        for spec in self.config().secrets:
            if selects(spec.namespaces, event.namespace):
                keys.append((spec.name, event.namespace.name))
            elif event.change == "MODIFIED":
                keys.append((spec.name, None))
        return keys

    def _service_account(self, event: ServiceAccountEvent) -> list[Key]:
        """A listed ServiceAccount without the spec's Secret among its imagePullSecrets."""
        account = event.account
        if event.change == "DELETED":
            return []
        return [
            (spec.name, account.namespace)
            for spec in self.config().secrets
            if ("*" in spec.service_accounts or account.name in spec.service_accounts)
            and spec.name not in account.pull_secrets
        ]

    def _secret(self, event: SecretEvent) -> list[Key]:
        """Ours deleted or edited: repair that namespace. Another installation's Secret matters
        only when it goes (the namespace may then be ours to fill); its edits are not ours to undo."""
        secret = event.secret
        desired = self.desired(secret.spec) if secret.spec is not None else None
        if secret.spec is None or desired is None:
            return []
        theirs = secret.ownership(desired.instance) is Ownership.OTHER_INSTANCE
        if event.change == "DELETED" or not (theirs or secret.matches(desired)):
            return [(secret.spec, secret.namespace)]
        return []

    def relisted(self, kind: str) -> list[Key]:
        """A relist after the first of its kind may follow missed events: re-check every spec."""
        with self._lock:
            first = kind not in self._listed
            self._listed.add(kind)
        return [] if first else [(spec.name, None) for spec in self.config().secrets]


class Loop(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class WatchSet:
    """The watch loops of the running config, by kind. A new config starts the loops it needs and
    stops those it no longer does; the others go on (and keep their place in the stream)."""

    def __init__(self, loops_for: Callable[[Config], dict[str, Loop]]) -> None:
        self.loops_for = loops_for
        self.running: dict[str, Loop] = {}

    def start(self, config: Config) -> None:
        self.update(config)

    def update(self, config: Config) -> None:
        wanted = self.loops_for(config)
        for kind in set(self.running) - set(wanted):
            self.running.pop(kind).stop()
        for kind in sorted(set(wanted) - set(self.running)):
            self.running[kind] = wanted[kind]
            wanted[kind].start()

    def stop(self) -> None:
        for loop in self.running.values():
            loop.stop()
