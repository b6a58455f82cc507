"""Ask the registry whether it accepts a login before that login is rolled out.

A credential a source hands us can still be wrong: rotated on the registry side, a robot account
disabled, a typo in Vault. Writing it would replace a working pull secret with a broken one, and
pods would only notice at their next image pull. `verify_login` asks the registry's `/v2/`
endpoint (Docker Registry HTTP API v2), following the distribution token-auth flow that Docker
Hub, GHCR, ECR, Harbor and Quay use: Basic auth first, and on a `Bearer` challenge a token from
the challenge's realm, then `/v2/` again with that token.

Two answers must never be confused: the registry saying no (`VerificationFailed`, do not roll
out) and the registry not answering properly (`SourceUnavailable`, an outage: retry, and do not
blame the credential). Only an explicit 401/403 is a no.

Secrets: the password and the token travel in request headers only. Messages name the
credential, the registry, a URL without its query and the HTTP status, never a header value,
a response body or a secret. Credentials are dropped when a redirect leaves the origin they were
meant for, and never sent in cleartext to a non-loopback host unless the registry was configured
with an explicit `http://`.

Only the standard library is used (urllib honours `HTTPS_PROXY`/`NO_PROXY`, which matters in
clusters that reach registries through a proxy).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from syncd import __version__
from syncd.core.errors import InvalidCredential, SourceError, SourceUnavailable
from syncd.core.safe_json import loads_or_invalid
from syncd.core.values import RegistryCredential
from syncd.registry.credential_rules import DOCKER_HUB_HOSTS

DOCKER_HUB_API = "https://registry-1.docker.io"  # what `index.docker.io/v1/` logins are checked against
MAX_REDIRECTS = 5
MAX_TOKEN_RESPONSE = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = f"syncd/{__version__}"
_HOST = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$")
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: nothing that could split a header
# RFC 7235 §2.1: challenge = scheme [ token68 / #auth-param ], auth-param = token "=" (token / quoted-string).
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SEPARATORS = re.compile(r"[\s,]*")
# Bare values are taken up to the next comma or space, not only as tokens: some servers leave a URL unquoted.
_AUTH_PARAM = re.compile(rf'({_TCHAR})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
_SCHEME = re.compile(_TCHAR)
_TOKEN68 = re.compile(r"\s+[A-Za-z0-9._~+/-]+=*\s*(?=,|$)")
_ESCAPE = re.compile(r"\\(.)")


class VerificationFailed(SourceError):
    """The registry rejected the login (401/403 after the whole auth flow): do not roll it out."""

    reason = "rejected"


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme lower-cased, parameter names lower-cased."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


def verify_login(credential_name: str, login: RegistryCredential, *, timeout: float = 10.0) -> None:
    """Return when the registry accepts `login`; raise `VerificationFailed` when it rejects it.

    Raises `SourceUnavailable` when the registry cannot be reached, errs (5xx, 429, ...), times out
    or answers outside the protocol, and `InvalidCredential` when `login.registry` is not a
    registry address. `timeout` bounds the whole check, every request and redirect included.
    """
    try:
        bases = registry_base_urls(login.registry)
    except ValueError as exc:
        shown = "with user info" if "@" in login.registry else repr(login.registry)
        raise InvalidCredential(credential_name, f"registry {shown} is not a registry address: {exc}") from None
    registry = _display_registry(login.registry, bases[0])
    # One TLS context per check: loading the CA store costs tens of milliseconds, and a fresh one per
    # check still picks up a rotated CA bundle without a restart.
    call = _Call(credential_name, registry, time.monotonic() + timeout, timeout, ssl.create_default_context())
    base, first = _probe(call, bases, _basic(login))
    if _accepted(first):
        return
    _reject_unless(call, first, 401)
    challenge = _bearer_challenge(first.headers)
    if challenge is None:
        # Basic (or an unknown scheme): the login we just sent is what the registry refused.
        raise _rejected(call, first)
    token = _fetch_token(call, base, challenge, login)
    second = _get(call, f"{base}/v2/", f"Bearer {token}")
    if not _accepted(second):
        _reject_unless(call, second, 401)
        raise _rejected(call, second)


def registry_base_urls(registry: str) -> list[str]:
    """The base URLs to try for `registry`, in order; raise ValueError when it names no host.

    `host[:port]` means https, plus http for loopback hosts (docker treats those as insecure
    registries); an explicit scheme is honoured as given. Any path is ignored, since the v2 API
    lives at the root; Docker Hub's `https://index.docker.io/v1/` is served by registry-1.docker.io.
    """
    text = registry.strip()
    explicit = "://" in text
    parts = urlsplit(text if explicit else f"https://{text}")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme {scheme!r}")
    host = parts.hostname or ""
    port = parts.port  # ValueError when not a number in range
    if not _valid_host(host):
        raise ValueError("no valid host name")
    if host in DOCKER_HUB_HOSTS:
        return [DOCKER_HUB_API]
    netloc = f"[{host}]" if ":" in host else host
    netloc = f"{netloc}:{port}" if port is not None else netloc
    if explicit:
        return [f"{scheme}://{netloc}"]
    if is_loopback(host):
        return [f"https://{netloc}", f"http://{netloc}"]
    return [f"https://{netloc}"]


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: registries that may be plain http and must bypass proxies."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_www_authenticate(values: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given `WWW-Authenticate` header values (RFC 7235), in order.

    Quoted values may hold commas and escaped quotes (`scope="repository:a/b:pull,push"`), and one
    header may carry several challenges, so a plain split on commas is not enough.
    """
    challenges: list[Challenge] = []
    for value in values:
        challenges.extend(_parse_header(value))
    return challenges


# --- internals -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One verification: what every message names, and the deadline shared by all its requests."""

    credential: str
    registry: str
    deadline: float
    timeout: float
    tls: ssl.SSLContext


@dataclass(frozen=True)
class _Response:
    """What is kept of one answer: status, final URL and headers; a body only for the token endpoint."""

    status: int
    url: str
    headers: Message
    body: bytes = b""


class _ReturnEveryResponse(urllib.request.HTTPErrorProcessor):
    """Hand every status back to us: urllib would otherwise raise on 4xx/5xx and follow redirects
    with the Authorization header still attached, whatever host they lead to."""

    def http_response(self, request: urllib.request.Request, response: http.client.HTTPResponse) -> Any:  # noqa: ARG002
        return response

    https_response = http_response


def _valid_host(host: str) -> bool:
    if _HOST.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _display_registry(registry: str, base: str) -> str:
    """The registry as configured, unless it embeds user info (`user:pass@host`): then the base URL."""
    return base if "@" in registry else registry.strip()


def _display_url(url: str) -> str:
    """A URL for messages: no user info, no query (it carries the account name), no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.hostname or "", parts.port


def _basic(login: RegistryCredential) -> str:
    return "Basic " + base64.b64encode(f"{login.username}:{login.password}".encode()).decode("ascii")


def _probe(call: _Call, bases: list[str], basic: str) -> tuple[str, _Response]:
    """GET /v2/ on the first base that answers: for loopback, https first, then plain http."""
    for index, base in enumerate(bases):
        try:
            return base, _get(call, f"{base}/v2/", basic)
        except SourceUnavailable:
            if index == len(bases) - 1:
                raise
    raise AssertionError("registry_base_urls returned no base")  # pragma: no cover - never empty


def _accepted(response: _Response) -> bool:
    return 200 <= response.status < 300


def _reject_unless(call: _Call, response: _Response, expected: int) -> None:
    """403 is always a no; any status other than `expected` is the registry failing, not the login."""
    if response.status == 403:
        raise _rejected(call, response)
    if response.status != expected:
        raise SourceUnavailable(
            call.credential, f"registry {call.registry}: HTTP {response.status} from {_display_url(response.url)}"
        )


def _rejected(call: _Call, response: _Response) -> VerificationFailed:
    return VerificationFailed(
        call.credential,
        f"registry {call.registry} rejected the login: HTTP {response.status} from {_display_url(response.url)}",
    )


def _bearer_challenge(headers: Message) -> Challenge | None:
    challenges = parse_www_authenticate(headers.get_all("WWW-Authenticate") or [])
    return next((c for c in challenges if c.scheme == "bearer"), None)


def _fetch_token(call: _Call, base: str, challenge: Challenge, login: RegistryCredential) -> str:
    """Exchange the login for a token at the challenge's realm, as `docker login` does."""
    url = _token_url(call, base, challenge, login.username)
    response = _get(call, url, _basic(login), read_body=True)
    if not _accepted(response):
        _reject_unless(call, response, 401)
        raise _rejected(call, response)
    answer = loads_or_invalid(response.body)
    token = _token_of(answer)
    if token is None:
        raise SourceUnavailable(
            call.credential,
            f"registry {call.registry}: token endpoint {_display_url(response.url)} answered without a usable token",
        )
    return token


def _token_url(call: _Call, base: str, challenge: Challenge, username: str) -> str:
    """The realm with `service`, each `scope` and `account` added to whatever query it already has."""
    realm = challenge.params.get("realm", "")
    parts = urlsplit(realm)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SourceUnavailable(call.credential, f"registry {call.registry}: Bearer challenge without a usable realm")
    cleartext_ok = urlsplit(base).scheme == "http" or is_loopback(parts.hostname)
    if parts.scheme.lower() == "http" and not cleartext_ok:
        raise SourceUnavailable(
            call.credential,
            f"registry {call.registry}: token realm {_display_url(realm)} is not https, and the login is never "
            "sent in cleartext to a host other than loopback",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    query.extend(("scope", scope) for scope in challenge.params.get("scope", "").split())
    if username:
        query.append(("account", username))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def _token_of(answer: Any) -> str | None:
    """`token`, else `access_token` (OAuth2 naming, used by some registries), if fit for a header."""
    if not isinstance(answer, dict):
        return None
    for key in ("token", "access_token"):
        value = answer.get(key)
        if isinstance(value, str) and _TOKEN_CHARS.match(value):
            return value
    return None


def _get(call: _Call, url: str, authorization: str | None, *, read_body: bool = False) -> _Response:
    """GET `url`, following redirects ourselves: `authorization` goes only to the origin of `url`.

    A redirect to another scheme, host or port (an https -> http downgrade included) is followed
    without credentials; coming back to the original origin gets them again.
    """
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if authorization is not None and _origin(url) == origin:
            headers["Authorization"] = authorization
        with _open(call, url, headers) as response:
            location = response.headers.get("Location") if response.status in _REDIRECTS else None
            if location is None:
                body = _read_capped(call, url, response) if read_body and response.status == 200 else b""
                return _Response(response.status, url, response.headers, body)
        url = _redirect_target(call, url, location)
    raise SourceUnavailable(call.credential, f"registry {call.registry}: more than {MAX_REDIRECTS} redirects")


def _redirect_target(call: _Call, url: str, location: str) -> str:
    target = urljoin(url, location.strip())
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise SourceUnavailable(call.credential, f"registry {call.registry}: {_display_url(url)} redirects off http(s)")
    return target


def _open(call: _Call, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """One request within the deadline; any transport failure is the registry being unavailable."""
    remaining = call.deadline - time.monotonic()
    if remaining <= 0:
        raise SourceUnavailable(call.credential, f"registry {call.registry}: no answer within {call.timeout:g}s")
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - scheme checked: http(s)
    try:
        response: http.client.HTTPResponse = _opener(call, url).open(request, timeout=remaining)
    except (OSError, http.client.HTTPException) as exc:
        raise SourceUnavailable(
            call.credential, f"registry {call.registry}: cannot reach {_display_url(url)}: {_describe(exc)}"
        ) from exc
    except ValueError:
        # http.client quotes a rejected header value, and that value is the login: keep it out of the chain.
        raise SourceUnavailable(
            call.credential, f"registry {call.registry}: cannot send a request to {_display_url(url)}"
        ) from None
    return response


def _opener(call: _Call, url: str) -> urllib.request.OpenerDirector:
    """An opener that verifies TLS, returns every status, and talks to loopback hosts directly."""
    handlers: list[urllib.request.BaseHandler] = [
        _ReturnEveryResponse(),
        urllib.request.HTTPSHandler(context=call.tls),
    ]
    if is_loopback(urlsplit(url).hostname or ""):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _read_capped(call: _Call, url: str, response: http.client.HTTPResponse) -> bytes:
    try:
        body = response.read(MAX_TOKEN_RESPONSE + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise SourceUnavailable(
            call.credential, f"registry {call.registry}: reading from {_display_url(url)} failed: {_describe(exc)}"
        ) from exc
    if len(body) > MAX_TOKEN_RESPONSE:
        raise SourceUnavailable(call.credential, f"registry {call.registry}: {_display_url(url)} answered over 1 MiB")
    return body


def _describe(exc: BaseException) -> str:
    """A short, secret-free cause: OS and TLS error texts only, never what the server sent."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failure ({reason.reason or type(reason).__name__})"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    if isinstance(reason, str):
        return reason
    # http.client errors (BadStatusLine, ...) quote what the server sent: name the kind only.
    return type(reason).__name__


def _parse_header(value: str) -> list[Challenge]:
    challenges: list[tuple[str, dict[str, str]]] = []
    pos = _skip_separators(value, 0)
    while pos < len(value):
        param = _AUTH_PARAM.match(value, pos)
        if param and challenges:
            name, quoted, bare = param.groups()
            challenges[-1][1][name.lower()] = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
            pos = param.end()
        elif scheme := _SCHEME.match(value, pos):
            challenges.append((scheme.group().lower(), {}))
            pos = scheme.end()
            token68 = _TOKEN68.match(value, pos)
            pos = token68.end() if token68 else pos
        else:
            pos += 1  # not HTTP syntax: skip the character rather than give up on the rest
        pos = _skip_separators(value, pos)
    return [Challenge(scheme, params) for scheme, params in challenges]


def _skip_separators(value: str, pos: int) -> int:
    match = _SEPARATORS.match(value, pos)
    return match.end() if match else pos
