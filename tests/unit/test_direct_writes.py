"""syncd/kube/direct.py: the hot writes on keep-alive http.client connections, against a TLS
server that requires the client certificate, as the apiserver does."""

from __future__ import annotations

import base64
import gc
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from harness import pki
from syncd.core.errors import KubeError
from syncd.kube import client as kube_client
from syncd.kube import direct
from syncd.kube.client import MERGE_PATCH, WriteFence, call, load_api_client, send_json


@dataclass
class Seen:
    """What the server received, and how it answers: `statuses` in turn (then 200), and whether it
    closes each connection after answering without saying so (a kept-alive connection gone stale)."""

    requests: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)
    drop_after_answer: bool = False


def handler(seen: Seen) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PATCH(self) -> None:
            self.answer()

        def do_POST(self) -> None:
            self.answer()

        def answer(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.requests.append((self.command, self.path, self.headers["Content-Type"], body))
            seen.connections.add(self.client_address)
            status = seen.statuses.pop(0) if seen.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            self.wfile.flush()
            if seen.drop_after_answer:  # no `Connection: close`: the client keeps it for the next write
                self.close_connection = True

        def log_message(self, *_: object) -> None: ...

    return Handler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Seen, Path]]:
    certs = pki.create(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.serving_cert), str(certs.serving_key))
    context.verify_mode = ssl.CERT_REQUIRED  # the admin certificate or nothing
    seen = Seen()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(seen))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_kubeconfig(f"https://127.0.0.1:{httpd.server_address[1]}", certs)))
    yield seen, kubeconfig
    httpd.shutdown()
    httpd.server_close()
    gc.collect()  # the ApiClients of the test go, and their writers' connections with them


def _kubeconfig(url: str, certs: pki.KubePKI) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    user = {"client-certificate-data": b64(certs.admin_cert), "client-key-data": b64(certs.admin_key)}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": url, "certificate-authority-data": b64(certs.ca_cert)}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }


def patch(api: client.ApiClient, namespace: str) -> None:
    body = {"metadata": {"resourceVersion": "7"}, "data": {"k": "dg=="}}
    path = "/api/v1/namespaces/{namespace}/secrets/{name}"
    send_json(api, "PATCH", path, body, content_type=MERGE_PATCH, namespace=namespace, name="regcred", what="patching")


def test_writes_go_out_direct_on_one_kept_alive_connection(server: tuple[Seen, Path]) -> None:
    seen, kubeconfig = server
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    assert direct.for_client(api) is not None
    for namespace in ("team-a", "team-b", "team-c"):
        patch(api, namespace)
    assert [(m, p, t) for m, p, t, _ in seen.requests] == [
        ("PATCH", f"/api/v1/namespaces/{ns}/secrets/regcred", MERGE_PATCH) for ns in ("team-a", "team-b", "team-c")
    ]
    assert seen.requests[0][3] == {"metadata": {"resourceVersion": "7"}, "data": {"k": "dg=="}}
    assert len(seen.connections) == 1


def test_a_stale_kept_alive_connection_is_replaced_and_the_write_sent_once(server: tuple[Seen, Path]) -> None:
    seen, kubeconfig = server
    seen.drop_after_answer = True
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    patch(api, "team-a")
    patch(api, "team-b")  # its kept connection was closed by the server: sent again on a new one
    assert [p for _, p, _, _ in seen.requests] == [
        f"/api/v1/namespaces/{ns}/secrets/regcred" for ns in ("team-a", "team-b")
    ]
    assert len(seen.connections) == 2


def test_a_connection_idle_too_long_is_not_reused(server: tuple[Seen, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    seen, kubeconfig = server
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    patch(api, "team-a")
    monkeypatch.setattr(direct, "IDLE_SECONDS", 0.0)
    patch(api, "team-b")
    assert len(seen.connections) == 2


def test_an_error_status_is_a_kube_error_and_a_429_is_retried(server: tuple[Seen, Path]) -> None:
    seen, kubeconfig = server
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    seen.statuses = [409]
    with pytest.raises(KubeError, match="patching: HTTP 409") as refused:
        patch(api, "team-a")
    assert refused.value.status == 409
    seen.statuses = [429]  # Retry-After: 1, then sent again
    patch(api, "team-a")
    assert len(seen.requests) == 3


def test_a_closed_fence_sends_nothing(server: tuple[Seen, Path]) -> None:
    seen, kubeconfig = server
    fence = WriteFence()
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4, fence=fence)
    fence.allowed = lambda: False
    with pytest.raises(KubeError, match="not sent: this replica no longer holds the leader lease"):
        patch(api, "team-a")
    assert seen.requests == []


def test_a_configuration_it_does_not_reproduce_keeps_urllib3(server: tuple[Seen, Path]) -> None:
    _, kubeconfig = server
    proxied = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    proxied.configuration.proxy = "http://proxy.example:3128"
    assert direct.for_client(proxied) is None
    named = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    named.configuration.tls_server_name = "kubernetes.default"
    assert direct.for_client(named) is None


def _hold(listener: socket.socket, held: list[socket.socket]) -> None:
    """Accept every connection and never read from or answer it (TLS never completes)."""
    while True:
        try:
            held.append(listener.accept()[0])
        except OSError:  # the listener closed: the test is over
            return


@pytest.mark.parametrize("request_kind", ["direct write", "generated read"])
def test_a_request_the_server_never_answers_fails_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request_kind: str
) -> None:
    """A hung apiserver (or a half-open connection) must not hold the thread, and its spec's sync,
    for ever: the request fails naming what it was. Writes go out direct, reads through the
    generated client (urllib3): each gets the timeout."""
    certs = pki.create(tmp_path / "pki")
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=_hold, args=(listener, held), daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_kubeconfig(f"https://127.0.0.1:{listener.getsockname()[1]}", certs)))
    monkeypatch.setattr(direct, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(kube_client, "CONNECT_TIMEOUT", 0.5)  # the TLS handshake never ends either
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=4)
    assert direct.for_client(api) is not None  # writes go direct; reads always through urllib3

    def request() -> None:
        if request_kind == "direct write":
            patch(api, "team-a")
        else:
            call(lambda: client.CoreV1Api(api).list_namespace(), what="listing namespaces")

    started = time.monotonic()
    with pytest.raises(KubeError, match="cannot reach the Kubernetes API"):
        request()
    assert time.monotonic() - started < 5  # urllib3 tries a GET 4 times: 4 x 0.5 s
    listener.close()
    for connection in held:
        connection.close()
