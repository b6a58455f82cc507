"""Structured logging with a last line of defence: registered secret values are masked.

Code never logs secret values on purpose; the redactor catches what slips through (a
library's message, an f-string someone adds later) before it reaches a handler.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

MASK = "[REDACTED]"
_FOREVER = object()  # the owner of values added with Redactor.add
# These log HTTP bodies at DEBUG, and Secret bodies carry credentials.
_CHATTY_LOGGERS = ("kubernetes", "kubernetes.client.rest", "urllib3", "hvac", "apscheduler")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Redactor:
    """Masks every secret value someone holds in a record's message, exception and extra fields.

    Values are held by owners (a cached credential, the content last rendered for a secret spec)
    and counted per value: a value is forgotten once no owner holds it, so a rotated password does
    not stay in memory for the life of the process, while one that another credential or rendered
    content still holds stays masked.
    """

    MIN_LENGTH = 4  # masking "a" or "ab" everywhere would destroy logs and protect nothing

    def __init__(self) -> None:
        self._held: dict[Hashable, frozenset[str]] = {}
        self._holders: Counter[str] = Counter()
        self._ordered: tuple[str, ...] = ()  # longest first, so a value inside another is not masked first
        self._lock = threading.Lock()

    def add(self, *values: str) -> None:
        """Mask `values` for the life of the process (values with no owner to forget them)."""
        with self._lock:
            self._hold(_FOREVER, self._held.get(_FOREVER, frozenset()) | self._maskable(values))

    def hold(self, owner: Hashable, values: Iterable[str]) -> None:
        """`owner` now holds exactly `values`: what it held before and nobody else holds is forgotten."""
        with self._lock:
            self._hold(owner, self._maskable(values))

    def release(self, owner: Hashable) -> None:
        """`owner` holds nothing any more."""
        with self._lock:
            self._hold(owner, frozenset())

    def masks(self, value: str) -> bool:
        return value in self._holders

    def _maskable(self, values: Iterable[str]) -> frozenset[str]:
        return frozenset(v for v in values if isinstance(v, str) and len(v) >= self.MIN_LENGTH)

    def _hold(self, owner: Hashable, values: frozenset[str]) -> None:
        before = self._held.pop(owner, frozenset())
        if values:
            self._held[owner] = values
        self._holders.update(values - before)
        self._holders.subtract(before - values)
        for value in before - values:
            if self._holders[value] <= 0:
                del self._holders[value]
        if values != before:
            self._ordered = tuple(sorted(self._holders, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def scrub_record(self, record: logging.LogRecord) -> None:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.scrub(value))


REDACTOR = Redactor()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD_ATTRS)
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        return f"{line}\n{record.exc_text}" if record.exc_text else line


def default_format() -> str:
    """JSON in a pod or when piped, text on a terminal."""
    return "text" if sys.stderr.isatty() else "json"


_factory_lock = threading.Lock()


def install_redaction() -> None:
    """Scrub every record as it is created, so that every handler (and pytest's caplog) sees it masked."""
    with _factory_lock:
        base = logging.getLogRecordFactory()
        if getattr(base, "syncd_redacting", False):
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            REDACTOR.scrub_record(record)
            return record

        factory.syncd_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)


def setup(level: str = "info", fmt: str | None = None) -> None:
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if (fmt or default_format()) == "json" else TextFormatter())
    handler.syncd_handler = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace only our own earlier handler: others (pytest's capture, an embedding app) stay.
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "syncd_handler", False)] + [handler]
    root.setLevel(level.upper())
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
