"""List+watch loops that survive anything: bookmarks, 410 Gone, dropped connections, restarts.

Each loop lists (every item, page by page, into its WatchCache store), then watches from that
LIST's resourceVersion, keeping the store current. It lists again after a 410, and every
`relist_every` seconds, which repairs the store should an event ever have been lost. Bodies
are parsed as plain JSON, and each object once more, here, into a typed value: neither the
cache nor `on_event` ever sees the API's dicts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from kubernetes import client

from syncd.core.errors import KubeError
from syncd.core.values import MANAGED_SELECTOR
from syncd.core.watch_events import (
    CHANGES,
    Change,
    KubeletEvent,
    NamespaceEvent,
    SecretEvent,
    ServiceAccountEvent,
    WatchEvent,
)
from syncd.kube.lists import WATCH_PAGE_SIZE, list_items
from syncd.kube.namespaces import info_from
from syncd.kube.secrets import existing_from
from syncd.kube.serviceaccounts import ref_from
from syncd.kube.stores import Value, WatchCache

log = logging.getLogger(__name__)
Parser = Callable[[Change, dict[str, Any]], WatchEvent]
EventHandler = Callable[[WatchEvent], None]
WATCH_SECONDS = 240
MAX_BACKOFF = 10.0
DEFAULT_RELIST_SECONDS = 3600.0


class Gone(Exception):
    """The resourceVersion we watch from is too old (410): list again."""


class WatchLoop:
    """One resource kind: list, then watch, forever, until `stop()`."""

    def __init__(
        self,
        kind: str,
        list_call: Callable[..., Any],
        parse: Parser,
        on_event: EventHandler,
        *,
        on_relist: Callable[[], None],
        cache: WatchCache | None = None,
        relist_every: float = DEFAULT_RELIST_SECONDS,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> None:
        self.kind = kind
        self.list_call = list_call
        self.parse = parse
        self.on_event = on_event
        self.on_relist = on_relist
        self.cache = cache or WatchCache()
        self.relist_every = relist_every
        self.listed_at = 0.0
        selectors = {"label_selector": label_selector, "field_selector": field_selector}
        self.selector = {key: value for key, value in selectors.items() if value}
        self.stopped = threading.Event()
        self.connected = threading.Event()
        self._response: Any = None  # the open watch stream, shut down by stop()
        self.thread = threading.Thread(target=self._run, name=f"syncd-watch-{kind}", daemon=True)

    def start(self) -> None:
        self.cache.expect(self.kind)
        self.thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop now: the open stream is shut down, so the thread does not sit in a read (holding a
        connection, and logging a failure when the apiserver goes) until the watch times out."""
        self.stopped.set()
        self.cache.forget(self.kind)
        response = self._response
        if response is not None:
            response.shutdown()
        if wait and self.thread.is_alive():
            self.thread.join(wait)

    def _run(self) -> None:
        resource_version: str | None = None
        backoff = 0.5
        while not self.stopped.is_set():
            try:
                if resource_version is None or self._relist_due():
                    resource_version = self._list()
                resource_version = self._watch(resource_version)
                backoff = 0.5
            except Gone:
                log.info("watch of %s expired (410); listing again", self.kind)
                self.cache.set_live(self.kind, False)  # events were missed: LISTs until the new one
                resource_version = None
            except Exception as exc:  # the loop must outlive any error: an apiserver restart, a bad event
                if self.stopped.is_set():
                    return  # stop() shut the stream down: not a failure
                self._down()
                log.warning("watch of %s failed (%s); retrying in %.1fs", self.kind, _describe(exc), backoff)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _down(self) -> None:
        """Events may be going missing: planning reads this kind with a LIST until the watch is back."""
        self.connected.clear()
        self.cache.set_live(self.kind, False)

    def _relist_due(self) -> bool:
        return time.monotonic() - self.listed_at >= self.relist_every

    def _list(self) -> str:
        """Every item, into the store, and where to watch from (the LIST's snapshot). Events may
        have been missed before it, so the owner re-checks (on_relist)."""
        version: list[str] = []
        items = list_items(
            self.list_call,
            what=f"listing {self.kind}",
            page_size=WATCH_PAGE_SIZE,
            on_version=version.append,
            **self.selector,
        )
        values = list(self._values(items))
        if self.stopped.is_set():
            return ""
        self.cache.replace(self.kind, values)
        self.listed_at = time.monotonic()
        self.on_relist()
        return version[0] if version else ""

    def _values(self, items: Iterator[dict[str, Any]]) -> Iterator[Value]:
        for item in items:
            parsed = self.parse("ADDED", item)
            if not isinstance(parsed, KubeletEvent):
                yield _value_of(parsed)

    def _store(self, event: WatchEvent) -> None:
        if not isinstance(event, KubeletEvent):  # the kubelet's Events are counted, never planned from
            self.cache.apply(self.kind, event.change, _value_of(event))

    def _watch(self, resource_version: str) -> str:
        # The watch ends when the next re-list is due; a connection that went silent (half-open,
        # its events lost) is given up shortly after the apiserver would have ended it.
        timeout = max(1, int(min(WATCH_SECONDS, self.relist_every - (time.monotonic() - self.listed_at))))
        response = self.list_call(
            watch=True,
            resource_version=resource_version or None,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=(10, timeout + 10),
            **self.selector,
        )
        self._response = response
        if self.stopped.is_set():  # stop() came between the request and the line above
            response.shutdown()
        self.connected.set()
        self.cache.set_live(self.kind, True)
        try:
            for event in _lines(response, self.stopped):
                resource_version = self._handle(event, resource_version)
        finally:
            self._response = None
            response.release_conn()
        return resource_version

    def _handle(self, event: dict[str, Any], resource_version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise KubeError(f"watch of {self.kind}: error event {obj.get('code')} {obj.get('reason')}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
        if kind in CHANGES:
            parsed = self.parse(cast(Change, kind), obj)
            self._store(parsed)  # before routing: a sync it triggers sees it
            self.on_event(parsed)
        elif kind != "BOOKMARK":
            log.debug("watch of %s: ignoring an event of type %s", self.kind, kind)
        return version


def _lines(response: Any, stopped: threading.Event) -> Iterator[dict[str, Any]]:
    buffer = b""
    for chunk in response.stream(16 * 1024, decode_content=True):
        if stopped.is_set():
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def _value_of(event: NamespaceEvent | SecretEvent | ServiceAccountEvent) -> Value:
    if isinstance(event, NamespaceEvent):
        return event.namespace
    return event.secret if isinstance(event, SecretEvent) else event.account


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, KubeError) else type(exc).__name__


def namespace_event(change: Change, item: dict[str, Any]) -> WatchEvent:
    return NamespaceEvent(change, info_from(item))


def secret_event(change: Change, item: dict[str, Any]) -> WatchEvent:
    return SecretEvent(change, existing_from(item))


def service_account_event(change: Change, item: dict[str, Any]) -> WatchEvent:
    return ServiceAccountEvent(change, ref_from(item))


def watch_loops(
    api: client.ApiClient,
    *,
    secret_names: list[str],
    service_account_names: list[str] | None,
    on_event: EventHandler,
    on_relist: Callable[[str], None],
    cache: WatchCache | None = None,
    relist_every: float = DEFAULT_RELIST_SECONDS,
) -> dict[str, WatchLoop]:
    """The loops a config needs, by kind: namespaces; syncd-labelled Secrets of each spec's name
    (`resourceNames`-grantable, never every Secret); the ServiceAccounts it edits, by name, or
    every one when a spec says "*" (None)."""
    core = client.CoreV1Api(api)

    def loop(kind: str, list_call: Callable[..., Any], parse: Parser, **selectors: str) -> WatchLoop:
        return WatchLoop(
            kind,
            list_call,
            parse,
            on_event,
            on_relist=lambda: on_relist(kind),
            cache=cache,
            relist_every=relist_every,
            **selectors,
        )

    loops = [loop("namespaces", core.list_namespace, namespace_event)]
    loops += [
        loop(
            f"secrets/{name}",
            core.list_secret_for_all_namespaces,
            secret_event,
            label_selector=MANAGED_SELECTOR,
            field_selector=f"metadata.name={name}",
        )
        for name in secret_names
    ]
    all_accounts = core.list_service_account_for_all_namespaces
    if service_account_names is None:
        loops.append(loop("serviceaccounts", all_accounts, service_account_event))
    loops += [
        loop(f"serviceaccounts/{name}", all_accounts, service_account_event, field_selector=f"metadata.name={name}")
        for name in service_account_names or []
    ]
    return {w.kind: w for w in loops}
