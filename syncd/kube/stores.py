"""What the watches have seen, kept so that a sync in which nothing changed asks the apiserver nothing.

Each watched kind (`namespaces`, `secrets/<name>`, `serviceaccounts[/<name>]`) has a store: filled
by a full LIST, then kept current by that kind's watch events. A store answers only while it is
live (listed, and its watch not failing): a watch that is down may be missing events, so its kind
is read with a LIST again until the watch is back. A periodic full re-list
(`schedule.relist_interval`) replaces each store whole, which repairs what a lost event left.

Lean on purpose, for 50,000 namespaces: the stores hold the small slotted values planning needs
(parsed once at the watch edge, strings interned there), never the API's objects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from syncd.core.values import ExistingSecret, NamespaceInfo, ServiceAccountRef
from syncd.core.watch_events import Change

Value = NamespaceInfo | ExistingSecret | ServiceAccountRef
Key = str | tuple[str, str]


def key_of(value: Value) -> Key:
    """Namespaces by name; Secrets of one name by namespace; ServiceAccounts by (namespace, name)."""
    if isinstance(value, NamespaceInfo):
        return value.name
    if isinstance(value, ExistingSecret):
        return value.namespace
    return (value.namespace, value.name)


class _Store:
    __slots__ = ("items", "listed", "live")

    def __init__(self, items: dict[Key, Value], *, listed: bool) -> None:
        self.items = items
        self.listed = listed
        self.live = listed


class WatchCache:
    """The stores of every watched kind; thread-safe (watch threads write, sync threads read)."""

    def __init__(self) -> None:
        self._stores: dict[str, _Store] = {}
        self._changed = threading.Condition()

    def expect(self, kind: str) -> None:
        """A watch of `kind` is starting: reads wait (a bounded time) for its first LIST."""
        with self._changed:
            self._stores.setdefault(kind, _Store({}, listed=False))

    def replace(self, kind: str, values: Iterable[Value]) -> None:
        """A full LIST of `kind`: its store becomes exactly this, and live."""
        items = {key_of(value): value for value in values}
        with self._changed:
            self._stores[kind] = _Store(items, listed=True)
            self._changed.notify_all()

    def apply(self, kind: str, change: Change, value: Value) -> None:
        with self._changed:
            store = self._stores.get(kind)
            if store is None:
                return
            if change == "DELETED":
                store.items.pop(key_of(value), None)
            else:
                store.items[key_of(value)] = value

    def set_live(self, kind: str, live: bool) -> None:
        """A watch connected (True) or failing (False): only a live store is read."""
        with self._changed:
            store = self._stores.get(kind)
            if store is not None:
                store.live = live
                store.listed = store.listed or not live  # a first LIST failing: read with LISTs, don't wait
                self._changed.notify_all()

    def forget(self, kind: str) -> None:
        """The watch of `kind` stopped (a reload no longer needs it): nothing to read any more."""
        with self._changed:
            self._stores.pop(kind, None)

    def values(self, kind: str, *, wait: float = 0.0) -> list[Value] | None:
        """A snapshot of a live store; None when `kind` is not watched, or its watch is down.
        A kind still on its first LIST (seconds at 50,000) is waited for up to `wait` seconds:
        listing it a second time would cost the apiserver and our memory twice."""
        deadline = time.monotonic() + wait
        with self._changed:
            while (store := self._stores.get(kind)) is not None and not store.listed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return list(store.items.values()) if store is not None and store.live else None

    def get(self, kind: str, key: Key) -> Value | None:
        with self._changed:
            store = self._stores.get(kind)
            return store.items.get(key) if store is not None else None
