"""Bench: the admission webhook under a burst of Pod creations through the real apiserver, and the
idle daemon's apiserver requests with the webhook and `repair_pods` on (issue 22, item 4).

    python -m bench.webhook [--pods 300] [--threads 8] [--idle 60] [--out bench/results/webhook.json]

One `syncd run` (admission at 127.0.0.1 through `admission.url`, `repair_pods: true`) on the
harness stack (kube-apiserver, controller-manager, scheduler, OpenBao; no node: the Pods stay
Pending). Measured:
- idle: `apiserver_request_total` scraped before and after an idle window once syncd is ready
  and its namespace in sync; the resources syncd reads or writes (its watches end and are
  re-opened every 240 s: `syncd_watches` counts those among them);
- burst: `--pods` Pods created on `--threads` threads, each create's latency at the client
  (the apiserver's round trip, the webhook's call included), first in a namespace labelled
  `syncd.io/inject=false` (the configuration's namespaceSelector leaves it out: no call), then in
  a selected one (every Pod patched); and the webhook's own answer time, from syncd's
  `syncd_admission_duration_seconds` histogram (p50 / p99 interpolated within its buckets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import hvac
import yaml
from kubernetes import client, config

from bench.measure import diff_requests, request_totals
from bench.rawkube import Credentials, RawKube
from harness import Stack
from harness.kube_objects import default_service_account
from harness.process import free_port
from harness.syncd_process import SyncdProcess, has_secret, vault_config
from harness.wait import wait_until
from syncd.config import load_config
from syncd.manifests import webhook


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=300, help="Pods per burst")
    parser.add_argument("--threads", type=int, default=8, help="concurrent creators")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle window")
    parser.add_argument("--out", type=Path, default=Path("bench/results/webhook.json"))
    return parser.parse_args(argv)


def settings(stack: Stack, work: Path, home: str) -> dict[str, Any]:
    vault = hvac.Client(url=stack.vault.address, token=stack.vault.token)
    login = {"username": stack.registry.username, "password": stack.registry.password}
    vault.secrets.kv.v2.create_or_update_secret("bench/webhook", secret=login)
    address = f"127.0.0.1:{free_port()}"
    return {
        "instance": "bench-hook",
        "vault": vault_config(stack, work),
        "credentials": [
            {"name": "harness", "registry": stack.registry.host, "vault": {"kv": 2, "path": "bench/webhook"}}
        ],
        "secrets": [
            {
                "name": "regcred",
                "credentials": ["harness"],
                "namespaces": {"patterns": ["hook-*"]},
                "service_accounts": ["default"],
            }
        ],
        "schedule": {"interval": "1h"},
        "admission": {"enabled": True, "address": address, "namespace": home, "url": f"https://{address}/mutate"},
        "repair_pods": True,
    }


def burst(core: client.CoreV1Api, namespace: str, image: str, count: int, threads: int) -> list[float]:
    """Seconds per Pod create, `count` of them on `threads` threads."""
    run = uuid.uuid4().hex[:5]

    def create(i: int) -> float:
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"p-{run}-{i}"),
            # A pull Secret of its own: the ServiceAccount plugin then copies none, so the webhook
            # appends regcred to every Pod (its patching path, not the cheaper "listed already").
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="app", image=image)],
                image_pull_secrets=[client.V1LocalObjectReference(name="mine")],
            ),
        )
        began = time.perf_counter()
        core.create_namespaced_pod(namespace, pod, _preload_content=False)
        return time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(create, range(count)))


def quantiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2), "n": len(values)}


def histogram_quantile(text: str, name: str, q: float) -> float:
    """Prometheus' histogram_quantile over one unlabelled histogram in an exposition text."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def measure(stack: Stack, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    assert stack.kube.pki is not None
    pki = stack.kube.pki
    raw = RawKube(Credentials(stack.kube.url, pki.ca_cert, pki.admin_cert, pki.admin_key))
    api = config.new_client_from_config(config_file=str(stack.kube.kubeconfig))
    core, hooks = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)
    # hook-off: labelled out of the configuration's namespaceSelector, the apiserver never calls the
    # webhook there: the baseline. Both selected by the spec.
    home, namespace, baseline = "syncd-bench", "hook-0", "hook-off"
    for name, labels in ((home, {}), (namespace, {}), (baseline, {"syncd.io/inject": "false"})):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    for name in (namespace, baseline):
        default_service_account(core, name)
    image = f"{stack.registry.host}/bench/app:v1"
    config_settings = settings(stack, work, home)
    (work / "syncd.yaml").write_text(yaml.safe_dump(config_settings))
    results: dict[str, Any] = {"pods": args.pods, "threads": args.threads}
    # Applied first, as an installer does: syncd patches the caBundle of the one it finds at start.
    hooks.create_mutating_webhook_configuration(cast(Any, webhook.manifests(load_config(work / "syncd.yaml"))[0]))
    daemon = SyncdProcess(config_settings, work / "daemon", stack.kube.kubeconfig, {}).start(log_level="info")
    try:
        daemon.wait_ready()
        wait_until(lambda: has_secret(core, namespace), 30, "regcred in the namespace")
        wait_until(lambda: ca_bundle(hooks), 30, "the caBundle")
        time.sleep(5)  # the caBundle patch's own watch events, the first syncs' Events: let them pass
        before = request_totals(raw)
        time.sleep(args.idle)
        idle = diff_requests(before, request_totals(raw))
        results["idle"] = {"seconds": args.idle, **idle.as_dict()}
        # Before any Pod exists: the scheduler then patches its FailedScheduling Events (no node here).
        results["without_webhook"] = quantiles(burst(core, baseline, image, args.pods, args.threads))
        results["with_webhook"] = quantiles(burst(core, namespace, image, args.pods, args.threads))
        text = daemon.metrics()
        name = "syncd_admission_duration_seconds"
        results["webhook_answer"] = {
            "p50_ms": round(histogram_quantile(text, name, 0.5) * 1000, 2),
            "p99_ms": round(histogram_quantile(text, name, 0.99) * 1000, 2),
            **{r: daemon.metric("syncd_admission_requests_total", result=r) for r in ("patched", "unchanged", "error")},
        }
    finally:
        daemon.stop_quietly()
    return results


def ca_bundle(hooks: client.AdmissionregistrationV1Api) -> bool:
    found: Any = hooks.read_mutating_webhook_configuration("syncd-bench-hook", _preload_content=False)
    return bool(json.loads(found.data)["webhooks"][0]["clientConfig"].get("caBundle"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="syncd-bench-webhook-") as folder:
        work = Path(folder)
        stack = Stack(work / "stack")
        stack.up()
        try:
            results = measure(stack, work, args)
        finally:
            stack.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
