"""The serving certificate, re-read when its files change (cert-manager rotates them in place).

Each connection's handshake asks `current()`, which looks at the files at most once per
`check_every` seconds. A Secret volume swaps a `..data` symlink, so the inode changes even
when the size and mtime would not. A pair that does not load (a rotation caught between the
cert and the key) is logged and the previous context kept; the next check tries again.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
Signature = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path


class ServingTls:
    def __init__(
        self, files: TlsFiles, *, check_every: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.files = files
        self.check_every = check_every
        self.clock = clock
        self.reloads = 0
        self._signature = self._stat()
        self._context = _context(files)  # the first load fails loudly: a bad path is a config error
        self._checked = clock()

    def current(self) -> ssl.SSLContext:
        now = self.clock()
        if now - self._checked >= self.check_every:
            self._checked = now
            self._reload_if_changed()
        return self._context

    def _reload_if_changed(self) -> None:
        try:
            signature = self._stat()
            if signature == self._signature:
                return
            self._context = _context(self.files)
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS certificate not reloaded, the previous one is kept", extra={"error": tls_error(exc)})
            return
        self._signature = signature
        self.reloads += 1
        log.info("TLS certificate reloaded", extra={"cert_file": str(self.files.cert_file)})

    def _stat(self) -> Signature:
        stats = (os.stat(self.files.cert_file), os.stat(self.files.key_file))
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    return context


def tls_error(exc: Exception) -> str:
    # Never the file's content: only the kind of failure and the file it was about.
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or getattr(exc, 'reason', None) or 'unreadable'}"
