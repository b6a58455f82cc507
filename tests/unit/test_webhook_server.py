"""The webhook's HTTPS listener with the daemon's answer behind it, over real loopback TLS: a burst of
reviews (latency p50 / p99, printed), and malformed, oversized and wrong-kind reviews answered
without harm to the next."""

from __future__ import annotations

import datetime as dt
import gc
import json
import socket
import ssl
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from syncd.config import parse_config
from syncd.core.values import NamespaceInfo
from syncd.daemon.admission import AdmissionService, ConflictLedger
from syncd.daemon.server import Limits, TlsFiles
from syncd.daemon.server.certs import issue
from syncd.daemon.server.webhook import WebhookServer
from syncd.engine.metrics import Metrics

CONFIG = parse_config(
    {
        "credentials": [{"name": "c", "registries": ["r.example"], "docker_config": "/dev/null"}],
        "secrets": [
            {"name": "regcred", "credentials": ["c"], "namespaces": {"patterns": ["team-*"]}, "service_accounts": ["*"]}
        ],
        "admission": {"enabled": True},
    }
)
MAX_BODY = 64 << 10


class Stores:
    def get(self, kind: str, key: str | tuple[str, str]) -> object | None:
        if kind == "namespaces" and isinstance(key, str) and key.startswith("team-"):
            return NamespaceInfo(key)
        return None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, CollectorRegistry]]:
    bundle = issue(["127.0.0.1"], dt.datetime.now(dt.UTC))
    (tmp_path / "tls.crt").write_bytes(bundle.cert)
    (tmp_path / "tls.key").write_bytes(bundle.key)
    (tmp_path / "ca.crt").write_bytes(bundle.ca_cert)
    registry = CollectorRegistry()
    service = AdmissionService(lambda: CONFIG, Stores(), ConflictLedger(), Metrics(registry), namespace_wait=0.05)
    files = TlsFiles(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = WebhookServer("127.0.0.1:0", service.mutate, tls=files, limits=Limits(max_body_bytes=MAX_BODY))
    server.start()
    try:
        yield f"https://127.0.0.1:{server.port}", tmp_path / "ca.crt", registry
    finally:
        server.stop()
        gc.collect()  # a transport the server left behind is reported by the test that made it


def review(namespace: str = "team-a") -> dict[str, Any]:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "r.example/i"}]}}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": namespace,
        "object": pod,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def test_a_burst_of_reviews_is_answered_fast(served: tuple[str, Path, CollectorRegistry]) -> None:
    url, ca, registry = served
    seconds = []
    with requests.Session() as session:
        for _ in range(300):
            body = review()
            began = time.perf_counter()
            answer = session.post(f"{url}/mutate", json=body, verify=str(ca), timeout=5)
            seconds.append(time.perf_counter() - began)
            assert answer.status_code == 200
            assert answer.json()["response"]["uid"] == body["request"]["uid"]
            assert answer.json()["response"]["patchType"] == "JSONPatch"
    p50, p99 = statistics.median(seconds), statistics.quantiles(seconds, n=100)[98]
    print(f"\nwebhook over loopback TLS, keep-alive, 300 reviews: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    assert p99 < 0.5  # the apiserver waits 2 s at most; on a loaded 2-core machine this is ~100x margin
    assert registry.get_sample_value("syncd_admission_requests_total", {"result": "patched"}) == 300


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', 400),
        (json.dumps({**review(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(), 200),
    ],
    ids=["malformed", "no-uid", "wrong-version"],
)
def test_bad_reviews_are_answered_and_the_next_one_is_served(
    served: tuple[str, Path, CollectorRegistry], body: bytes, status: int
) -> None:
    url, ca, _ = served
    refused = requests.post(f"{url}/mutate", data=body, verify=str(ca), timeout=5)
    assert refused.status_code == status
    if status == 200:
        assert refused.json()["response"]["allowed"] is True
        assert "patch" not in refused.json()["response"]
    fine = requests.post(f"{url}/mutate", json=review(), verify=str(ca), timeout=5)
    assert fine.status_code == 200


def test_only_post_mutate_is_served(served: tuple[str, Path, CollectorRegistry]) -> None:
    url, ca, _ = served
    assert requests.get(f"{url}/mutate", verify=str(ca), timeout=5).status_code == 405
    assert requests.get(f"{url}/metrics", verify=str(ca), timeout=5).status_code == 404
    assert requests.get(f"{url}/healthz", verify=str(ca), timeout=5).status_code == 200


def test_an_oversized_review_is_refused_before_its_body_is_read(served: tuple[str, Path, CollectorRegistry]) -> None:
    """413 on the headers alone: the body is never read (a client racing to send it may see the
    connection closed instead, which the apiserver treats as a failed call: Ignore)."""
    url, ca, _ = served
    port = int(url.rpartition(":")[2])
    head = f"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(head)
        answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    fine = requests.post(f"{url}/mutate", json=review(), verify=str(ca), timeout=5)
    assert fine.status_code == 200
