"""TLS for the admission webhook without a manual step: one Secret, shared by every replica.

The Secret (`admission.secret` in `admission.namespace`) holds a CA and a serving certificate.
Any replica creates it when it is absent (the first create wins, the others read it) and
replaces it, with its resourceVersion, once a third of a certificate's life is left; each
replica writes the pair to files of its own that the listener re-reads (syncd.daemon.server.tls).
The leader keeps the `caBundle` of the MutatingWebhookConfiguration (by name) equal to the CA.

Requests: one read at start; then nothing until a renewal is due, except the leader's check of
the caBundle once per `relist_interval` (a `helm upgrade` that resets it is repaired within it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from syncd.config import Config
from syncd.core.clock import utcnow
from syncd.core.errors import KubeError
from syncd.daemon.server.certs import Bundle, hosts_of, issue, needs_new, renew_at
from syncd.daemon.server.tls import TlsFiles

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0


class WebhookStore(Protocol):
    """What the keeper needs of the cluster (syncd.kube.webhook.WebhookObjects); errors: KubeError."""

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str] | None: ...
    def create_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None: ...
    def replace_secret(self, namespace: str, name: str, data: dict[str, bytes], resource_version: str) -> None: ...
    def ca_bundles(self, name: str) -> list[tuple[str, bytes]] | None: ...
    def set_ca_bundle(self, name: str, webhooks: list[str], bundle: bytes) -> None: ...


def url_host(url: str | None) -> str | None:
    if not url:
        return None
    host = url.removeprefix("https://").split("/", 1)[0]
    return host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]


class TlsKeeper:
    def __init__(
        self,
        store: WebhookStore,
        config: Config,
        *,
        is_leader: Callable[[], bool],
        on_files: Callable[[TlsFiles], None],
        clock: Callable[[], dt.datetime] = utcnow,
        directory: Path | None = None,
    ) -> None:
        admission = config.admission
        self.store = store
        self.namespace, self.name = admission.namespace, config.webhook_secret
        self.configuration = config.webhook_configuration
        self.hosts = hosts_of(
            service=admission.service, namespace=admission.namespace, url_host=url_host(admission.url)
        )
        self.check_every = config.schedule.relist_interval.total_seconds()
        self.is_leader = is_leader
        self.on_files = on_files  # called once, with the first pair written
        self.clock = clock
        self.files = _files(directory or Path(tempfile.mkdtemp(prefix="syncd-webhook-")))
        self.bundle: Bundle | None = None
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="syncd-webhook-tls", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()

    def leading(self) -> None:
        """Leadership was taken: check the caBundle now."""
        self.wake.set()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                wait = self.check()
            except KubeError as exc:
                log.warning("admission webhook TLS: %s; retrying in %.0fs", exc, RETRY_SECONDS)
                wait = RETRY_SECONDS
            self.wake.wait(wait)
            self.wake.clear()

    def check(self) -> float:
        """One round: the Secret current, the files written, the caBundle (leader); seconds to the next."""
        bundle = self._current()
        self._write(bundle)
        if self.is_leader():
            self._ca_bundle(bundle)
        due = renew_at(bundle)
        until_due = (due - self.clock()).total_seconds() if due else 0.0
        return max(1.0, min(until_due, self.check_every))

    def _current(self) -> Bundle:
        found = self.store.read_secret(self.namespace, self.name)
        bundle = Bundle.of(found[0]) if found else None
        if bundle is not None and not needs_new(bundle, self.hosts, self.clock()):
            return bundle
        fresh = issue(self.hosts, self.clock(), bundle)
        try:
            if found is None:
                self.store.create_secret(self.namespace, self.name, fresh.data())
            else:
                self.store.replace_secret(self.namespace, self.name, fresh.data(), found[1])
        except KubeError as exc:
            if exc.status != 409:
                raise
            return self._current()  # another replica wrote it first: theirs
        log.info("admission webhook TLS: certificate issued", extra={"secret": f"{self.namespace}/{self.name}"})
        return fresh

    def _write(self, bundle: Bundle) -> None:
        if bundle == self.bundle:
            return
        first = self.bundle is None
        _replace(self.files.key_file, bundle.key)
        _replace(self.files.cert_file, bundle.cert)
        self.bundle = bundle
        if first:
            self.on_files(self.files)

    def _ca_bundle(self, bundle: Bundle) -> None:
        hooks = self.store.ca_bundles(self.configuration)
        if hooks is None:
            log.warning(
                "admission webhook: MutatingWebhookConfiguration %s not found: apply `syncd admission --config FILE`",
                self.configuration,
            )
            return
        if any(current != bundle.ca_cert for _, current in hooks):
            self.store.set_ca_bundle(self.configuration, [name for name, _ in hooks], bundle.ca_cert)
            log.info("admission webhook: caBundle updated", extra={"configuration": self.configuration})


def _files(directory: Path) -> TlsFiles:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return TlsFiles(directory / "tls.crt", directory / "tls.key")


def _replace(path: Path, content: bytes) -> None:
    """Whole or not at all: a listener reloading meanwhile sees the old file or the new one."""
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temporary, path)
