"""The HTTP server against the real apiserver: /metrics behind TokenReview + SubjectAccessReview,
and `syncd run` serving HTTPS with that check while a flood of idle and slow connections lasts."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from prometheus_client import CollectorRegistry

from harness import Stack, pki
from harness.charts import find, render
from harness.kube_objects import issued_token
from harness.syncd_process import SyncdProcess, base_config
from harness.wait import wait_until
from syncd.daemon.server import HttpServer
from syncd.daemon.server.auth import MetricsGuard
from syncd.engine.metrics import Metrics
from syncd.kube.reviews import AccessReviews

RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Tokens:
    reviewer: str  # syncd's ServiceAccount: system:auth-delegator
    scraper: str  # Prometheus's: may get /metrics
    stranger: str  # a ServiceAccount without either


def _service_account_token(core_v1: client.CoreV1Api, namespace: str, name: str) -> str:
    core_v1.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    return issued_token(core_v1.create_namespaced_service_account_token(name, namespace, request))


def _bind(rbac: client.RbacAuthorizationV1Api, role: str, namespace: str, account: str) -> None:
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=f"{namespace}-{account}"),
        role_ref=client.V1RoleRef(api_group=RBAC, kind="ClusterRole", name=role),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
    )
    rbac.create_cluster_role_binding(binding)


@pytest.fixture
def tokens(kube_api: client.ApiClient, core_v1: client.CoreV1Api, namespace: str) -> Tokens:
    rbac = client.RbacAuthorizationV1Api(kube_api)
    reader = f"{namespace}-metrics-reader"
    rule = client.V1PolicyRule(non_resource_urls=["/metrics"], verbs=["get"])
    rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=reader), rules=[rule]))
    found = Tokens(*(_service_account_token(core_v1, namespace, name) for name in ("syncd", "prometheus", "stranger")))
    _bind(rbac, "system:auth-delegator", namespace, "syncd")
    _bind(rbac, reader, namespace, "prometheus")
    return found


def _api_as(stack: Stack, token: str) -> client.ApiClient:
    assert stack.kube.pki is not None
    configuration = client.Configuration()
    configuration.host = stack.kube.url
    configuration.ssl_ca_cert = str(stack.kube.pki.ca_cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


@pytest.fixture
def guarded(stack: Stack, tokens: Tokens) -> Iterator[HttpServer]:
    registry = CollectorRegistry()
    Metrics(registry)
    reviews = AccessReviews(_api_as(stack, tokens.reviewer))
    server = HttpServer(
        "127.0.0.1:0", registry, healthy=lambda: (True, "ok"), ready=lambda: (True, "ok"), guard=MetricsGuard(reviews)
    )
    server.start()
    yield server
    server.stop()


def _scrape(port: int, token: str | None, scheme: str = "http", verify: str | bool = False) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{scheme}://127.0.0.1:{port}/metrics", headers=headers, timeout=10, verify=verify)


def test_metrics_needs_a_token_the_apiserver_allows_to_get_metrics(
    guarded: HttpServer, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    allowed = _scrape(guarded.port, tokens.scraper)
    assert allowed.status_code == 200
    assert "syncd_build_info" in allowed.text
    assert _scrape(guarded.port, tokens.stranger).status_code == 403
    assert _scrape(guarded.port, None).status_code == 401
    assert _scrape(guarded.port, "not-a-token").status_code == 401
    assert requests.get(f"http://127.0.0.1:{guarded.port}/healthz", timeout=5).status_code == 200
    assert all(token not in caplog.text for token in (tokens.scraper, tokens.stranger, tokens.reviewer))


def test_a_reviewer_without_auth_delegator_answers_503_without_the_token(
    stack: Stack, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = CollectorRegistry()
    reviews = AccessReviews(_api_as(stack, tokens.stranger))  # may not create TokenReviews
    server = HttpServer(
        "127.0.0.1:0", registry, healthy=lambda: (True, ""), ready=lambda: (True, ""), guard=MetricsGuard(reviews)
    )
    server.start()
    try:
        refused = _scrape(server.port, tokens.scraper)
    finally:
        server.stop()
    assert refused.status_code == 503
    errors = [str(getattr(record, "error", "")) for record in caplog.records]
    assert any(error.startswith("create TokenReview: HTTP 403") for error in errors)
    assert tokens.scraper not in caplog.text
    assert all(tokens.scraper not in str(record.__dict__) for record in caplog.records)
    assert tokens.scraper not in refused.text


class ServedSyncd(SyncdProcess):
    """`syncd run` with a `server:` block of the test's own, spoken to over HTTPS."""

    def __init__(self, stack: Stack, directory: Path, config: dict[str, Any], server: dict[str, Any], ca: Path):
        super().__init__(config, directory, stack.kube.kubeconfig, stack.helper.env)
        document = yaml.safe_load(self.config_path.read_text())
        document["server"] = {"address": f"127.0.0.1:{self.port}", **server}
        self.config_path.write_text(yaml.safe_dump(document))
        self.ca = ca

    def get(self, path: str) -> requests.Response:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"syncd exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return requests.get(f"https://127.0.0.1:{self.port}{path}", timeout=5, verify=str(self.ca))

    def threads(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/task"))


def _flood(port: int, count: int) -> list[socket.socket]:
    """Idle connections, and every fourth a slowloris: half a TLS ClientHello-less request, never finished."""
    flood = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 4 == 0:
            sock.sendall(b"\x16\x03\x01")  # the first bytes of a TLS record, and nothing more
        flood.append(sock)
    return flood


def test_syncd_run_serves_https_checks_tokens_and_answers_probes_under_a_flood(
    stack: Stack, tmp_path: Path, vault_path: str, tokens: Tokens, instance: str
) -> None:
    serving = pki.create(tmp_path / "pki")
    server = {
        "tls": {"cert_file": str(serving.serving_cert), "key_file": str(serving.serving_key)},
        "metrics_auth": "kubernetes",
        "max_connections": 64,
        "read_timeout": "30s",
    }
    config = {"instance": instance, **base_config(stack, tmp_path, vault_path, f"s{uuid.uuid4().hex[:6]}")}
    syncd = ServedSyncd(stack, tmp_path / "syncd", config, server, serving.ca_cert)
    try:
        syncd.start()
        syncd.wait_ready()
        assert syncd.get("/metrics").status_code == 401
        assert _scrape(syncd.port, tokens.scraper, "https", str(serving.ca_cert)).status_code == 200
        assert _scrape(syncd.port, tokens.stranger, "https", str(serving.ca_cert)).status_code == 403
        threads_before = syncd.threads()
        flood = _flood(syncd.port, 300)
        try:
            for path in ("/healthz", "/readyz") * 5:
                started = time.monotonic()
                assert syncd.get(path).status_code == 200
                assert time.monotonic() - started < 2.0
            assert syncd.threads() <= threads_before + 4  # at most the /metrics workers not started yet
        finally:
            for sock in flood:
                sock.close()
        wait_until(lambda: syncd.get("/healthz").ok, 10, "/healthz after the flood")
        assert syncd.terminate() == 0
    finally:
        syncd.stop_quietly()
    log = syncd.log()
    assert all(token not in log for token in (tokens.scraper, tokens.stranger))


def test_the_charts_service_monitor_follows_server_tls_and_metrics_auth(tmp_path: Path) -> None:
    helm_home = tmp_path / "helm-home"  # helm's cache, config and data: never the user's
    served = render(
        helm_home,
        "serviceMonitor.enabled=true",
        "config.server.tls.cert_file=/etc/syncd/tls/tls.crt",
        "config.server.tls.key_file=/etc/syncd/tls/tls.key",
        "config.server.metrics_auth=kubernetes",
        'json:serviceMonitor.tlsConfig={"serverName": "syncd.syncd.svc"}',
    )
    [endpoint] = find(served, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": "syncd.syncd.svc"}
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    [plain] = find(render(helm_home, "serviceMonitor.enabled=true"), "ServiceMonitor")["spec"]["endpoints"]
    assert plain["scheme"] == "http"
    assert "tlsConfig" not in plain
    assert "bearerTokenFile" not in plain
