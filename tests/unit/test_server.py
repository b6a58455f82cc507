"""The HTTP server under attack: floods of idle and slow connections, oversized requests, slow
clients, TLS with a rotated certificate, and /metrics behind a (fake) token reviewer."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from harness import pki
from harness.wait import wait_until
from syncd.config.models import Server, ServerTls
from syncd.core.errors import ConfigError, KubeError
from syncd.daemon.server import HttpServer, Limits, TlsFiles
from syncd.daemon.server.auth import Access, MetricsGuard
from syncd.engine.metrics import Metrics

TOKEN = "eyJhbGciOi.not-a-real-token.but-secret-all-the-same"


def _server(**kwargs: object) -> HttpServer:
    registry = CollectorRegistry()
    Metrics(registry)
    server = HttpServer("127.0.0.1:0", registry, healthy=lambda: (True, "ok"), ready=lambda: (True, "ok"), **kwargs)  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture
def server() -> Iterator[HttpServer]:
    running = _server(limits=Limits(read_timeout=2.0))
    yield running
    running.stop()


def _connect(server: HttpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _exchange(server: HttpServer, raw: bytes) -> bytes:
    with _connect(server) as sock:
        sock.sendall(raw)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_routes(server: HttpServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert requests.get(f"{base}/healthz", timeout=5).text == "ok\n"
    assert requests.head(f"{base}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{base}/metrics", timeout=5, headers={"Accept-Encoding": "gzip"})
    assert metrics.status_code == 200
    assert metrics.headers["Content-Encoding"] == "gzip"
    assert "syncd_build_info" in metrics.text
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    assert requests.post(f"{base}/metrics", data=b"{}", timeout=5).status_code == 405


def test_keep_alive_serves_several_requests_on_one_connection(server: HttpServer) -> None:
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status_code == 200
    assert server.serving.connections.evicted == 0


def test_a_body_past_the_limit_is_answered_413_before_it_is_read() -> None:
    running = _server(limits=Limits(max_body_bytes=1 << 20))
    try:
        head = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"
        assert _exchange(running, head).startswith(b"HTTP/1.1 413 ")  # no body byte was sent
        small = b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
        assert _exchange(running, small).startswith(b"HTTP/1.1 405 ")  # read, then refused by the route
    finally:
        running.stop()


def test_oversized_or_malformed_heads_are_refused(server: HttpServer) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * (32 << 10) + b"\r\n\r\n"
    assert _exchange(server, huge).startswith(b"HTTP/1.1 431 ")
    many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n"
    assert _exchange(server, many).startswith(b"HTTP/1.1 431 ")
    assert _exchange(server, b"GET /healthz HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    assert _exchange(server, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    chunked = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert _exchange(server, chunked).startswith(b"HTTP/1.1 501 ")


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"],
    ids=["idle", "slow-headers", "slow-body"],
)
def test_a_slow_client_is_cut_off_after_the_read_timeout(server: HttpServer, sent: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        try:
            closed = sock.recv(100) == b""  # blocks until the server closes (or resets) it
        except ConnectionResetError:
            closed = True
        waited = time.monotonic() - started
    assert closed
    assert 1.5 < waited < 6  # read_timeout is 2 s


def test_probes_answer_under_a_flood_of_idle_and_slow_connections() -> None:
    threads_before = threading.active_count()
    running = _server(limits=Limits(max_connections=256, read_timeout=30.0))
    flood: list[socket.socket] = []
    try:
        for i in range(400):
            sock = _connect(running)
            if i % 4 == 0:  # a slowloris: half a request, never finished
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            flood.append(sock)
        connections = running.serving.connections
        wait_until(lambda: connections.evicted + len(connections) >= 400, 10, "400 connections accepted or evicted")
        for path in ("/healthz", "/readyz") * 5:
            started = time.monotonic()
            assert requests.get(f"http://127.0.0.1:{running.port}{path}", timeout=2).status_code == 200
            assert time.monotonic() - started < 1.0
        assert len(connections) <= 256
        assert connections.evicted >= 400 - 256
        # The event loop, one probe thread, and the /metrics workers: nothing per connection.
        assert threading.active_count() - threads_before <= 2 + Limits().workers
    finally:
        for sock in flood:
            sock.close()
        running.stop()


def test_a_flood_of_slow_readers_of_metrics_does_not_delay_the_probes() -> None:
    """Clients that ask for /metrics and never read the answer hold workers at most read_timeout."""
    running = _server(limits=Limits(read_timeout=30.0, max_queued=4))
    flood = [_connect(running) for _ in range(50)]
    try:
        for sock in flood:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"http://127.0.0.1:{running.port}/healthz", timeout=2).status_code == 200
            assert time.monotonic() - started < 1.0
    finally:
        for sock in flood:
            sock.close()
        running.stop()


class FakeReviewer:
    def __init__(self, answers: dict[str, Access]) -> None:
        self.answers = answers
        self.calls = 0
        self.fail = False

    def access(self, token: str, *, path: str, verb: str) -> Access:
        self.calls += 1
        if self.fail:
            raise KubeError("create TokenReview: HTTP 500 Internal Server Error", status=500)
        assert (path, verb) == ("/metrics", "get")
        return self.answers.get(token, "unauthenticated")


@pytest.fixture
def reviewer() -> FakeReviewer:
    return FakeReviewer({TOKEN: "allowed", "other": "forbidden"})


@pytest.fixture
def guarded(reviewer: FakeReviewer) -> Iterator[HttpServer]:
    running = _server(guard=MetricsGuard(reviewer))
    yield running
    running.stop()


def _scrape(server: HttpServer, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"http://127.0.0.1:{server.port}/metrics", headers=headers, timeout=5)


def test_metrics_auth_answers_401_403_200_and_caches(guarded: HttpServer, reviewer: FakeReviewer) -> None:
    missing = _scrape(guarded, None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert _scrape(guarded, "unknown").status_code == 401
    assert _scrape(guarded, "other").status_code == 403
    assert reviewer.calls == 2
    for _ in range(3):
        assert _scrape(guarded, TOKEN).status_code == 200
    assert reviewer.calls == 3  # one review, then the cache
    assert requests.get(f"http://127.0.0.1:{guarded.port}/healthz", timeout=5).status_code == 200


def test_metrics_auth_failure_is_503_and_never_shows_the_token(
    guarded: HttpServer, reviewer: FakeReviewer, caplog: pytest.LogCaptureFixture
) -> None:
    reviewer.fail = True
    caplog.set_level(logging.DEBUG)
    answer = _scrape(guarded, TOKEN)
    assert answer.status_code == 503
    assert TOKEN not in answer.text
    assert "cannot review" in caplog.text
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(record.__dict__) for record in caplog.records)


def _copy_pair(source: pki.KubePKI, directory: Path) -> TlsFiles:
    """The serving pair under fixed names, swapped as a Secret volume does (a new inode)."""
    for name, path in (("tls.crt", source.serving_cert), ("tls.key", source.serving_key)):
        shutil.copy(path, directory / f"{name}.new")
        (directory / f"{name}.new").replace(directory / name)
    return TlsFiles(directory / "tls.crt", directory / "tls.key")


def _verifies(server: HttpServer, ca: Path) -> bool:
    try:
        return requests.get(f"https://127.0.0.1:{server.port}/healthz", verify=str(ca), timeout=5).ok
    except requests.exceptions.SSLError:
        return False


def test_tls_serves_and_picks_up_a_rotated_certificate(tmp_path: Path) -> None:
    first, second = pki.create(tmp_path / "first"), pki.create(tmp_path / "second")
    files = _copy_pair(first, tmp_path)
    running = _server(tls=files)
    try:
        assert _verifies(running, first.ca_cert)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{running.port}/healthz", timeout=5)  # plain HTTP is not spoken
        _copy_pair(second, tmp_path)
        wait_until(lambda: _verifies(running, second.ca_cert), 10, "the reloaded certificate served")
        assert not _verifies(running, first.ca_cert)
    finally:
        running.stop()


def test_a_tls_handshake_that_never_comes_is_cut_off(tmp_path: Path) -> None:
    running = _server(tls=_copy_pair(pki.create(tmp_path / "pki"), tmp_path), limits=Limits(read_timeout=1.0))
    try:
        with _connect(running) as sock:
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""
            assert time.monotonic() - started < 5
        context = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
        with _connect(running) as sock, context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(tls).startswith(b"HTTP/1.1 200 ")
    finally:
        running.stop()


def test_request_bodies_in_memory_are_bounded_in_total() -> None:
    """Slow uploads on many connections may not hold max_connections x max_body_bytes."""
    running = _server(limits=Limits(max_body_bytes=1 << 20, body_budget=2 << 20, read_timeout=30.0))
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
    uploads = [_connect(running), _connect(running)]
    try:
        for sock in uploads:
            sock.sendall(head + b"a" * 1000)  # and the rest never comes
        wait_until(lambda: running.serving.body_bytes == 2 << 20, 10, "2 MiB of bodies being read")
        refused = _exchange(running, head)
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 1" in refused
    finally:
        for sock in uploads:
            sock.close()
        wait_until(lambda: running.serving.body_bytes == 0, 10, "every body released")
        running.stop()


def test_expect_100_continue_is_answered_before_the_body(server: HttpServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        assert b"HTTP/1.1 405 " in _read_all(sock)


def test_a_certificate_that_does_not_load_is_a_config_error(tmp_path: Path) -> None:
    config = Server(tls=ServerTls(cert_file=tmp_path / "missing.crt", key_file=tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match=r"server\.tls: cannot load .*missing\.crt"):
        HttpServer.from_config(config, CollectorRegistry(), healthy=lambda: (True, ""), ready=lambda: (True, ""))
