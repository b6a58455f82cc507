"""HTTP/1.1 on an asyncio stream, just as much as probes, /metrics and a webhook need.

Every read is bounded: the request line and headers by bytes (the stream's `limit`) and count,
the body by `Content-Length` (chunked bodies are refused), time by the caller's deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_HEADERS = 64
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")


class HttpError(Exception):
    """A request answered with an error status; the connection is closed afterwards."""

    def __init__(self, status: HTTPStatus, message: str, *headers: tuple[str, str]) -> None:
        self.status = status
        self.headers = headers
        super().__init__(message)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]  # names lowercased; a repeated header keeps its last value
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def keep_alive(self) -> bool:
        connection = self.header("connection").lower()
        return self.version == "HTTP/1.1" and "close" not in connection


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, status: HTTPStatus, text: str, *headers: tuple[str, str]) -> Response:
        return cls(status, (text + "\n").encode(), headers=list(headers))


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request line and headers; None when the client closed before sending a byte."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise HttpError(HTTPStatus.BAD_REQUEST, "connection closed inside the request headers") from None
    except asyncio.LimitOverrunError:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large") from None


def parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")[:-2]
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if version not in _VERSIONS:
        raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 or HTTP/1.1 only")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many request headers")
    path, _, query = target.partition("?")
    return Request(method, path, query, version, _headers(lines[1:]))


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "malformed header line")
        headers[name.lower()] = value.strip()
    return headers


def body_length(request: Request, max_body: int) -> int:
    """How many body bytes follow the headers; 413 past `max_body`, before any is read."""
    if request.header("transfer-encoding"):
        raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "chunked request bodies are not accepted: send Content-Length")
    raw = request.header("content-length") or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise HttpError(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
    if int(raw) > max_body:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body larger than {max_body} bytes")
    return int(raw)


def encode(response: Response, *, keep_alive: bool, head_only: bool = False) -> bytes:
    status = response.status
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body
