"""verify_login against in-process registries that speak the distribution token-auth flow."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import pki
from syncd.core.errors import InvalidCredential, SourceError, SourceUnavailable
from syncd.core.values import RegistryCredential
from syncd.registry.login import (
    DOCKER_HUB_API,
    Challenge,
    VerificationFailed,
    is_loopback,
    parse_www_authenticate,
    registry_base_urls,
    verify_login,
)

USERNAME = "robot$ci"
PASSWORD = "pw-9d1f6e-secret"
TOKEN = "tok-3b8a5c-bearer"
WRONG_PASSWORD = "wrong-pw-51e0aa"
BODY_MARKER = "body-marker-77c2"


@dataclass
class Seen:
    """One request as the fake registry received it."""

    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class FakeRegistry:
    """A registry on 127.0.0.1:<free port>.

    `mode="bearer"`: /v2/ demands `Bearer TOKEN` and challenges with a realm on /token, which
    checks Basic USERNAME:PASSWORD. `mode="basic"`: /v2/ takes Basic USERNAME:PASSWORD directly.
    The other fields force statuses, redirects and odd answers.
    """

    mode: str = "bearer"
    token_key: str = "token"
    challenge: str | None = None  # overrides the Bearer challenge; `{url}` is this server's base URL
    v2_status: int | None = None
    token_status: int | None = None
    token_body: bytes | None = None
    v2_redirect: str | None = None  # Location answered to GET /v2/
    token_redirect: str | None = None  # Location answered to GET /token
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self  # type: ignore[attr-defined]
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        if path == "/v2/" and self.v2_redirect is not None:
            return 307, {"Location": self.v2_redirect}, b""
        if path == "/token" and self.token_redirect is not None:
            return 307, {"Location": self.token_redirect}, b""
        if path.endswith("/v2/"):
            return self._v2(authorization)
        if path == "/token":
            return self._token(authorization)
        return 404, {}, b""

    def _v2(self, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        if self.v2_status is not None:
            return self.v2_status, {}, BODY_MARKER.encode()
        if self.mode == "basic":
            if authorization == basic(USERNAME, PASSWORD):
                return 200, {}, b"{}"
            return 401, {"WWW-Authenticate": 'Basic realm="fake"'}, BODY_MARKER.encode()
        if authorization == f"Bearer {TOKEN}":
            return 200, {}, b"{}"
        challenge = self.challenge or 'Bearer realm="{url}/token",service="fake.registry"'
        return 401, {"WWW-Authenticate": challenge.format(url=self.url)}, BODY_MARKER.encode()

    def _token(self, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        if self.token_status is not None:
            return self.token_status, {}, f"{BODY_MARKER} {TOKEN}".encode()
        if authorization != basic(USERNAME, PASSWORD):
            return 401, {}, BODY_MARKER.encode()
        if self.token_body is not None:
            return 200, {}, self.token_body
        return 200, {"Content-Type": "application/json"}, json.dumps({self.token_key: TOKEN}).encode()

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        fake: FakeRegistry = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        authorization = self.headers.get("Authorization")
        fake.seen.append(Seen(parts.path, parse_qs(parts.query), authorization))
        status, headers, body = fake.answer(parts.path, authorization)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def login(host: str, password: str = PASSWORD) -> RegistryCredential:
    return RegistryCredential(registry=host, username=USERNAME, password=password)


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor any exception chained to it carries a secret or a response body."""
    texts = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current.args), "".join(traceback.format_exception_only(current))]
        current = current.__cause__ or current.__context__
    for secret in (*secrets, BODY_MARKER):
        assert not [text for text in texts if secret in text]


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    registry.start()
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def other() -> Iterator[FakeRegistry]:
    """A second server: a different origin (port) for redirects; `localhost:<port>` is another host."""
    registry = FakeRegistry(mode="basic")
    registry.start()
    try:
        yield registry
    finally:
        registry.close()


# --- the Bearer flow ------------------------------------------------------------------------------------------------


def test_bearer_flow_accepts_the_right_login(fake: FakeRegistry) -> None:
    verify_login("ghcr", login(fake.host))

    first, token_request, second = fake.seen
    assert (first.path, first.authorization) == ("/v2/", basic(USERNAME, PASSWORD))
    assert token_request.path == "/token"
    assert token_request.authorization == basic(USERNAME, PASSWORD)
    assert token_request.query == {"service": ["fake.registry"], "account": [USERNAME]}
    assert (second.path, second.authorization) == ("/v2/", f"Bearer {TOKEN}")


def test_wrong_password_at_the_token_endpoint_is_rejected(fake: FakeRegistry) -> None:
    with pytest.raises(VerificationFailed) as caught:
        verify_login("ghcr", login(fake.host, WRONG_PASSWORD))

    message = str(caught.value)
    assert caught.value.reason == "rejected"
    assert "'ghcr'" in message
    assert fake.host in message
    assert "401" in message
    assert_secret_free(caught.value, WRONG_PASSWORD, PASSWORD, TOKEN)
    assert not fake.requests_to("/v2/")[1:], "no Bearer retry without a token"


def test_token_endpoint_refusing_with_403_is_rejected(fake: FakeRegistry) -> None:
    fake.token_status = 403
    with pytest.raises(VerificationFailed, match="403") as caught:
        verify_login("ghcr", login(fake.host))
    assert_secret_free(caught.value, PASSWORD, TOKEN)


def test_access_token_is_accepted_instead_of_token(fake: FakeRegistry) -> None:
    fake.token_key = "access_token"
    verify_login("ghcr", login(fake.host))
    assert fake.seen[-1].authorization == f"Bearer {TOKEN}"


def test_token_that_v2_then_refuses_is_rejected(fake: FakeRegistry) -> None:
    fake.token_body = json.dumps({"token": "not-the-token-4e1f"}).encode()
    with pytest.raises(VerificationFailed, match="401") as caught:
        verify_login("ghcr", login(fake.host))
    assert_secret_free(caught.value, PASSWORD, "not-the-token-4e1f")


def test_challenge_with_commas_inside_quotes_reaches_the_token_endpoint(fake: FakeRegistry) -> None:
    fake.challenge = (
        'Bearer realm="{url}/token",service="fake registry, eu",scope="repository:team/app:pull,push",error="x"'
    )
    verify_login("ghcr", login(fake.host))
    (token_request,) = fake.requests_to("/token")
    assert token_request.query == {
        "service": ["fake registry, eu"],
        "scope": ["repository:team/app:pull,push"],
        "account": [USERNAME],
    }


def test_realm_query_is_kept_and_several_scopes_are_sent_separately(fake: FakeRegistry) -> None:
    fake.challenge = (
        'Bearer realm="{url}/token?client=docker",service="svc",scope="repository:a:pull registry:catalog:*"'
    )
    verify_login("ghcr", login(fake.host))
    (token_request,) = fake.requests_to("/token")
    assert token_request.query["client"] == ["docker"]
    assert token_request.query["scope"] == ["repository:a:pull", "registry:catalog:*"]


@pytest.mark.parametrize(
    "body",
    [b"not json " + BODY_MARKER.encode(), b'{"expires_in": 300}', b'["' + TOKEN.encode() + b'"]', b'{"token": "a b"}'],
)
def test_token_endpoint_without_a_usable_token_is_unavailable(fake: FakeRegistry, body: bytes) -> None:
    fake.token_body = body
    with pytest.raises(SourceUnavailable, match="without a usable token") as caught:
        verify_login("ghcr", login(fake.host))
    assert_secret_free(caught.value, PASSWORD, TOKEN)


def test_challenge_without_realm_is_unavailable(fake: FakeRegistry) -> None:
    fake.challenge = 'Bearer service="fake.registry"'
    with pytest.raises(SourceUnavailable, match="realm"):
        verify_login("ghcr", login(fake.host))


def test_http_realm_for_an_https_registry_gets_no_credentials() -> None:
    """The realm is checked before any request: no login is sent in cleartext to a remote host."""
    from syncd.registry.login import _Call, _token_url  # noqa: PLC0415 - the guard has no observable request

    call = _Call("ghcr", "ghcr.io", time.monotonic() + 5, 5, ssl.create_default_context())
    challenge = Challenge("bearer", {"realm": "http://auth.example/token"})
    with pytest.raises(SourceUnavailable, match="not https"):
        _token_url(call, "https://ghcr.io", challenge, USERNAME)
    assert _token_url(call, "http://ghcr.io", challenge, USERNAME).startswith("http://auth.example/token?")


# --- Basic registries and statuses ----------------------------------------------------------------------------------


def test_basic_registry_accepts_the_right_login(other: FakeRegistry) -> None:
    verify_login("plain", login(other.host))
    assert [s.authorization for s in other.seen] == [basic(USERNAME, PASSWORD)]


def test_basic_registry_rejects_a_wrong_password(other: FakeRegistry) -> None:
    with pytest.raises(VerificationFailed, match="HTTP 401") as caught:
        verify_login("plain", login(other.host, WRONG_PASSWORD))
    assert_secret_free(caught.value, WRONG_PASSWORD, PASSWORD)


@pytest.mark.parametrize("status", [500, 502, 503, 429, 404])
def test_registry_errors_are_unavailable_not_rejected(fake: FakeRegistry, status: int) -> None:
    fake.v2_status = status
    with pytest.raises(SourceUnavailable) as caught:
        verify_login("ghcr", login(fake.host))
    assert not isinstance(caught.value, VerificationFailed)
    assert caught.value.reason == "unavailable"
    assert f"HTTP {status}" in str(caught.value)
    assert fake.host in str(caught.value)
    assert_secret_free(caught.value, PASSWORD)


def test_403_on_v2_is_rejected(fake: FakeRegistry) -> None:
    fake.v2_status = 403
    with pytest.raises(VerificationFailed, match="HTTP 403"):
        verify_login("ghcr", login(fake.host))


def test_401_without_a_challenge_is_rejected(fake: FakeRegistry) -> None:
    fake.v2_status = 401
    with pytest.raises(VerificationFailed, match="HTTP 401"):
        verify_login("ghcr", login(fake.host))


def test_token_endpoint_outage_is_unavailable(fake: FakeRegistry) -> None:
    fake.token_status = 503
    with pytest.raises(SourceUnavailable, match="HTTP 503") as caught:
        verify_login("ghcr", login(fake.host))
    assert not isinstance(caught.value, VerificationFailed)
    assert_secret_free(caught.value, PASSWORD, TOKEN)


def test_closed_port_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceUnavailable, match="cannot reach") as caught:
        verify_login("ghcr", login(f"127.0.0.1:{port}"))
    assert_secret_free(caught.value, PASSWORD)


def test_timeout_bounds_the_whole_check() -> None:
    """A server that accepts connections and never answers: https, then http, both within `timeout`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as caught:
            verify_login("ghcr", login(f"127.0.0.1:{sock.getsockname()[1]}"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert "timed out" in str(caught.value) or "no answer within" in str(caught.value)


def test_invalid_registry_address_is_invalid_credential() -> None:
    with pytest.raises(InvalidCredential):
        verify_login("ghcr", login("ftp://registry.example"))


# --- redirects ------------------------------------------------------------------------------------------------------


def test_same_origin_redirect_keeps_the_login(fake: FakeRegistry) -> None:
    fake.mode = "basic"
    fake.v2_redirect = "/mirror/v2/"
    verify_login("plain", login(fake.host))
    assert fake.requests_to("/mirror/v2/")[0].authorization == basic(USERNAME, PASSWORD)


@pytest.mark.parametrize("target_host", ["localhost", "127.0.0.1"])
def test_redirect_of_v2_to_another_host_drops_the_login(
    fake: FakeRegistry, other: FakeRegistry, target_host: str
) -> None:
    fake.v2_redirect = f"http://{target_host}:{other.port}/v2/"
    with pytest.raises(VerificationFailed) as caught:
        verify_login("ghcr", login(fake.host))
    assert other.seen, "the redirect was followed"
    assert all(s.authorization is None for s in other.seen)
    assert_secret_free(caught.value, PASSWORD, TOKEN)


def test_redirect_of_the_token_endpoint_to_another_host_drops_the_login(
    fake: FakeRegistry, other: FakeRegistry
) -> None:
    other.mode = "bearer"
    fake.token_redirect = f"http://localhost:{other.port}/token"
    with pytest.raises(VerificationFailed):
        verify_login("ghcr", login(fake.host))
    (token_request,) = other.requests_to("/token")
    assert token_request.authorization is None


def test_redirect_loop_is_unavailable(fake: FakeRegistry) -> None:
    fake.v2_redirect = "/v2/"
    with pytest.raises(SourceUnavailable, match="redirects"):
        verify_login("ghcr", login(fake.host))


# --- TLS and base URLs ----------------------------------------------------------------------------------------------


@pytest.fixture
def tls_fake(tmp_path: Path) -> Iterator[tuple[FakeRegistry, Path]]:
    """The fake registry behind TLS, with a certificate for 127.0.0.1 from a throwaway CA."""
    files = pki.create(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.serving_cert, files.serving_key)
    registry = FakeRegistry()
    registry.server.socket = context.wrap_socket(registry.server.socket, server_side=True)
    registry.start()
    try:
        yield registry, files.ca_cert
    finally:
        registry.close()


def test_loopback_registry_is_tried_with_https_first(
    tls_fake: tuple[FakeRegistry, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, ca_cert = tls_fake
    registry.challenge = 'Bearer realm="https://{host}/token",service="tls"'.replace("{host}", registry.host)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_cert))
    verify_login("tls", login(registry.host))
    assert [s.path for s in registry.seen] == ["/v2/", "/token", "/v2/"]


def test_untrusted_certificate_is_unavailable_for_an_https_registry(tls_fake: tuple[FakeRegistry, Path]) -> None:
    registry, _ = tls_fake
    with pytest.raises(SourceUnavailable, match="certificate verification failed") as caught:
        verify_login("tls", login(f"https://{registry.host}"))
    assert_secret_free(caught.value, PASSWORD)
    assert not registry.seen


def test_explicit_http_prefix_is_honoured(fake: FakeRegistry) -> None:
    """The fake speaks plain HTTP only: the login is checked there, challenge and token included."""
    verify_login("ghcr", login(f"http://{fake.host}/"))
    paths = [seen.path for seen in fake.seen]
    assert paths[0] == "/v2/", paths
    assert "/token" in paths, paths
    assert fake.seen[-1].authorization == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("ghcr.io", ["https://ghcr.io"]),
        ("GHCR.io", ["https://ghcr.io"]),
        ("quay.io/team", ["https://quay.io"]),
        ("registry.example:5000", ["https://registry.example:5000"]),
        ("https://registry.example/", ["https://registry.example"]),
        ("http://registry.example:5000", ["http://registry.example:5000"]),
        ("https://index.docker.io/v1/", [DOCKER_HUB_API]),
        ("docker.io", [DOCKER_HUB_API]),
        ("localhost:5000", ["https://localhost:5000", "http://localhost:5000"]),
        ("127.0.0.1:5000", ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]),
        ("127.3.2.1", ["https://127.3.2.1", "http://127.3.2.1"]),
        ("[::1]:5000", ["https://[::1]:5000", "http://[::1]:5000"]),
        ("https://127.0.0.1:5000", ["https://127.0.0.1:5000"]),
        ("128.0.0.1:5000", ["https://128.0.0.1:5000"]),
        ("https://user:pw@registry.example", ["https://registry.example"]),
    ],
)
def test_registry_base_urls(registry: str, expected: list[str]) -> None:
    assert registry_base_urls(registry) == expected


@pytest.mark.parametrize(
    "registry", ["", "ftp://registry.example", "registry.example:notaport", "bad host", "https://"]
)
def test_registry_base_urls_rejects_what_is_no_registry(registry: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError: the caller wraps it
        registry_base_urls(registry)


def test_is_loopback() -> None:
    assert all(is_loopback(h) for h in ("localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("ghcr.io", "10.0.0.1", "localhost.example", "0.0.0.0"))  # noqa: S104 - not a bind


def test_user_info_in_the_registry_never_reaches_a_message() -> None:
    embedded = "embedded-pw-0c3d"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceError) as caught:
        verify_login("ghcr", login(f"http://user:{embedded}@127.0.0.1:{port}"))
    assert_secret_free(caught.value, embedded, PASSWORD)
    with pytest.raises(InvalidCredential) as invalid:
        verify_login("ghcr", login(f"ftp://user:{embedded}@127.0.0.1:{port}"))
    assert_secret_free(invalid.value, embedded, PASSWORD)


# --- WWW-Authenticate parsing ---------------------------------------------------------------------------------------


def test_parse_bearer_challenge_with_commas_and_escapes() -> None:
    header = (
        r'Bearer realm="https://auth.example/token",service="a, b",scope="repository:x/y:pull,push",note="say \"hi\""'
    )
    assert parse_www_authenticate([header]) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "a, b",
                "scope": "repository:x/y:pull,push",
                "note": 'say "hi"',
            },
        )
    ]


def test_parse_several_challenges_in_one_header_and_across_headers() -> None:
    parsed = parse_www_authenticate(
        ['Basic realm="basic, realm", BEARER Realm=https://auth.example/token , service = svc', "Negotiate abc=="]
    )
    assert parsed == [
        Challenge("basic", {"realm": "basic, realm"}),
        Challenge("bearer", {"realm": "https://auth.example/token", "service": "svc"}),
        Challenge("negotiate", {}),
    ]


@pytest.mark.parametrize("header", ["", " , ", "Basic", 'Bearer realm="unterminated', "=== ,,"])
def test_parse_tolerates_odd_headers(header: str) -> None:
    challenges = parse_www_authenticate([header])
    assert all(isinstance(c, Challenge) for c in challenges)
