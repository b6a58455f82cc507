"""`python -m bench.run --out bench/results`: every figure of bench/README.md, in one run.

Starts the harness (etcd, kube-apiserver, OpenBao, ...) in a temporary folder, grows the cluster
to each size in turn (namespaces, each with a `default` ServiceAccount and one unrelated 4 KiB
Secret), and at each size measures, in this order:

1. the first sync (creates; not a headline figure), then rollout after a rotation: syncd
   in-process (best of --repeats), `syncd once` as a subprocess, the raw-HTTP write floor at
   several concurrencies, and the kubectl loop (only up to --kubectl-max namespaces);
2. an idle sync, counted at the apiserver (/metrics) and at OpenBao (audit log);
3. `syncd run`: peak RSS after its first full sync (which rolls out a fresh rotation), then the
   latency of --new-namespaces namespaces created one at a time.

The last size (--memory-size) is measured for 3. only. Results go to OUT/results.json; the
README section and the chart are rendered from that file by bench.report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

import syncd
from bench import contenders, daemon_phase, first_rollout, measure, population, report
from bench.gofloor import GoFloor
from bench.rawkube import Credentials, RawKube
from harness import Stack
from harness.kube import find_binaries
from harness.kube_objects import install_pullsync_crd
from harness.kubectl import kubectl_binary
from syncd.app import ClusterOptions, build_reconciler
from syncd.config import load_config
from syncd.engine.reconciler import Reconciler

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="results.json and chart.png go here")
    parser.add_argument("--sizes", default="100,1000,5000,10000", help="namespace counts for every measurement")
    parser.add_argument("--memory-size", type=int, default=50000, help="extra size, `syncd run` only (0: none)")
    parser.add_argument("--first-rollout-max", type=int, default=5000, help="largest size of the first-rollout figure")
    parser.add_argument(
        "--daemon-interval",
        type=int,
        default=12,
        help="`syncd run` schedule interval, seconds; above 10, or a sync reuses the last one's OpenBao answer",
    )
    parser.add_argument("--idle-intervals", type=int, default=3, help="scheduled syncs counted for the idle daemon")
    parser.add_argument("--kubectl-max", type=int, default=1000, help="largest size the kubectl loop is run at")
    parser.add_argument("--concurrency", default="1,4,8,16,32", help="Python write-floor concurrency levels")
    parser.add_argument("--go-concurrency", default="16,32,64", help="Go write-floor concurrency levels")
    parser.add_argument("--repeats", type=int, default=3, help="in-process syncd rollouts per size (best counts)")
    parser.add_argument("--new-namespaces", type=int, default=50, help="namespaces created for the latency figure")
    parser.add_argument("--readme", type=Path, default=Path(__file__).parent / "README.md")
    return parser.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


class Bench:
    def __init__(self, stack: Stack, work: Path, args: argparse.Namespace) -> None:
        assert stack.kube.pki is not None
        self.stack, self.work, self.args = stack, work, args
        self.credentials = Credentials(
            stack.kube.url, stack.kube.pki.ca_cert, stack.kube.pki.admin_cert, stack.kube.pki.admin_key
        )
        self.kube = RawKube(self.credentials)
        self.go = GoFloor.build(self.credentials)
        self.vault = contenders.Vault(stack.vault.address, stack.vault.token)
        self.config = contenders.syncd_config(self.vault, work / "vault-token")
        self.config_path = contenders.write_config(self.config, work / "syncd.yaml")
        self.audit = measure.AuditLog(stack.vault.audit_log)
        pids = stack.dir / "pids"
        self.servers = [int((pids / name).read_text()) for name in ("kube-apiserver", "etcd", "openbao")]
        # Watching what syncd writes, as in a real cluster; their CPU is reported apart.
        self.controllers = [int((pids / name).read_text()) for name in ("kube-controller-manager", "kube-scheduler")]
        self.populated = 0
        self.reconciler: Reconciler = build_reconciler(
            load_config(self.config_path), ClusterOptions(str(stack.kube.kubeconfig)), CollectorRegistry()
        )

    def run(self) -> dict[str, Any]:
        sizes = sorted(_ints(self.args.sizes))
        results: dict[str, Any] = {"sizes": {}}
        for n in sizes:
            results["sizes"][str(n)] = self.size(n, full=True)
        if self.args.memory_size:
            results["sizes"][str(self.args.memory_size)] = self.size(self.args.memory_size, full=False)
        return results

    def size(self, n: int, *, full: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"n": n}
        log.info("N=%d: populating", n)
        entry["populate"] = self._phase(lambda: self._populate(n))
        self.populated = max(self.populated, n)
        names = [population.namespace_name(i) for i in range(n)]
        entry["first_sync"] = self._phase(
            lambda: contenders.syncd_in_process(self.reconciler, self.vault, self.kube, names)
        )
        if full and n <= self.args.first_rollout_max:
            entry.update(self.first_rollouts(n, names))
        if full:
            entry.update(self.rollouts(n, names))
            entry["idle"] = self._phase(self.idle)
            entry["idle_once"] = self._phase(self.idle_once)
        entry["daemon"] = self._phase(lambda: self.daemon(n, names))
        log.info("N=%d: done %s", n, json.dumps(_summary(entry)))
        return entry

    def _populate(self, n: int) -> dict[str, Any]:
        started = time.monotonic()
        accounts = population.populate(self.kube, self.populated, n)
        return {"seconds": round(time.monotonic() - started, 3), "accounts_after_seconds": round(accounts, 3)}

    def first_rollouts(self, n: int, names: list[str]) -> dict[str, Any]:
        """Secrets and ServiceAccount links into namespaces that have neither: the Python floor, the
        Go floor, then syncd, each run as many times (a floor once per concurrency), the fastest
        of each counting. Resets and checks are outside every CPU figure."""
        log.info("N=%d: first rollout with ServiceAccounts (floors, then syncd)", n)
        concurrency = [c for c in _ints(self.args.concurrency) if c >= 8] or [8]
        go_levels = _ints(self.args.go_concurrency)
        found = {
            "first_floor": first_rollout.floor(self.kube, names, concurrency, self._meter).as_dict(),
            "first_go_floor": first_rollout.go_floor(self.go, self.kube, names, go_levels, self._meter).as_dict(),
        }
        # As many syncd runs as the floor has (one per concurrency), the fastest counting on both
        # sides: one syncd run against the best of three floor runs biased the ratio upward.
        runs = [self._first_syncd(names) for _ in concurrency]
        found["first_syncd"] = {**min(runs, key=lambda run: float(run["seconds"])), "runs": runs}
        return found

    def _first_syncd(self, names: list[str]) -> dict[str, Any]:
        first_rollout.reset(self.kube, names)
        run = self._phase(lambda: first_rollout.syncd_first(self.reconciler))
        run["wrong"] = first_rollout.not_rolled_out(self.kube, names)
        return run

    def _meter(self) -> measure.CpuMeter:
        return measure.CpuMeter(self.servers, controllers=self.controllers).start()

    def rollouts(self, n: int, names: list[str]) -> dict[str, Any]:
        log.info("N=%d: syncd rollouts", n)
        runs = [
            self._phase(lambda: contenders.syncd_in_process(self.reconciler, self.vault, self.kube, names))
            for _ in range(self.args.repeats)
        ]
        found: dict[str, Any] = {"syncd": {"runs": runs, "seconds": min(r["seconds"] for r in runs)}}
        found["syncd_once"] = self._phase(
            lambda: contenders.syncd_once(self.config_path, self.stack.kube.kubeconfig, self.vault, self.kube, names)
        )
        log.info("N=%d: write floor", n)
        found["floor"] = self._phase(lambda: contenders.floor(self.kube, names, _ints(self.args.concurrency)))
        log.info("N=%d: Go write floor", n)
        go_levels = _ints(self.args.go_concurrency)
        found["go_floor"] = self._phase(lambda: contenders.go_floor(self.go, self.kube, names, go_levels))
        if n <= self.args.kubectl_max:
            log.info("N=%d: kubectl loop", n)
            found["kubectl"] = self._phase(
                lambda: contenders.kubectl_loop(self.work, self.stack.kube.kubeconfig, self.vault, self.kube, names)
            )
        else:
            found["kubectl"] = {"not_run": True}
        # Back to syncd's own content before the idle sync (kubectl and the floor wrote theirs).
        contenders.syncd_in_process(self.reconciler, self.vault, self.kube, names)
        return found

    def idle(self) -> dict[str, Any]:
        """One in-process sync where nothing changed (the reconciler is logged in already)."""
        self.reconciler.sync_all()  # settle: the state must be exactly syncd's before counting
        return self._counted(self.reconciler.sync_all)

    def idle_once(self) -> dict[str, Any]:
        """The same, as a fresh `syncd once` process (which logs in to OpenBao first)."""
        argv = [sys.executable, "-m", "syncd", "once", "--config", str(self.config_path)]
        argv += ["--kubeconfig", str(self.stack.kube.kubeconfig), "--log-level", "warning"]
        return self._counted(lambda: subprocess.run(argv, capture_output=True, check=True))

    def _counted(self, action: Callable[[], object]) -> dict[str, Any]:
        versions = contenders.resource_versions(self.kube)
        self.audit.mark()
        before = measure.request_totals(self.kube)
        started = time.monotonic()
        action()
        seconds = time.monotonic() - started
        requests = measure.diff_requests(before, measure.request_totals(self.kube))
        vault_requests = self.audit.requests_since_mark()
        after = contenders.resource_versions(self.kube)
        changed = sorted(k for k in set(versions) | set(after) if versions.get(k) != after.get(k))
        return {
            "seconds": round(seconds, 3),
            "apiserver": requests.as_dict(),
            "openbao_requests": len(vault_requests),
            "openbao_by_path": vault_requests,
            "resource_versions_changed": len(changed),
            "changed_examples": changed[:5],
            "objects_checked": len(versions),
        }

    def daemon(self, n: int, names: list[str]) -> dict[str, Any]:
        """Rotate, start `syncd run` (its first sync rolls the rotation out), measure, stop."""
        password = self.vault.rotate()
        schedule = {"interval": f"{self.args.daemon_interval}s", "jitter": "0s"}
        process, sampler, ready = daemon_phase.start_daemon(
            {**self.config, "schedule": schedule}, self.work / f"daemon-{n}", self.stack.kube.kubeconfig, 1800
        )
        try:
            found: dict[str, Any] = {"ready_seconds": round(ready, 3)}
            found["wrong_after_first_sync"] = contenders.verify(self.kube, names, password)
            time.sleep(2)  # let the re-syncs the watches' first events trigger finish
            found["memory_after_first_sync_kib"] = daemon_phase.daemon_memory(process)
            if self.args.new_namespaces:
                syncs_before = daemon_phase.sync_durations(process)
                latency = daemon_phase.new_namespace_latency(
                    self.kube, self.credentials, self.args.new_namespaces, str(n)
                )
                found["new_namespace"] = latency
                found["syncs_during_new_namespaces"] = daemon_phase.sync_durations(process)[len(syncs_before) :]
                found["memory_after_new_namespaces_kib"] = daemon_phase.daemon_memory(process)
            found["idle_daemon"] = self.idle_daemon(process)
            found["memory_at_the_end_kib"] = daemon_phase.daemon_memory(process)
            found["rss_timeline_kib"] = sampler.timeline()
            found["exit_code"] = process.terminate(timeout=60)
        finally:
            process.stop_quietly()
        for namespace in found.get("new_namespace", {}).get("namespaces", []):
            # Terminating forever (no namespace controller): syncd skips, and prunes its Secret there.
            self.kube.request("DELETE", f"/api/v1/namespaces/{namespace}")
        return found

    def idle_daemon(self, process: Any) -> dict[str, Any]:
        """`syncd run` left alone for --idle-intervals scheduled syncs: apiserver requests (the
        watches' own long-running WATCH requests set apart), OpenBao requests, syncs run, and the
        daemon's CPU.

        The window opens right after a sync finished and closes right after the Kth next one
        finished, so it holds exactly K whole syncs, each with its OpenBao read. A window of fixed
        length cut syncs at its edges: a sync that read OpenBao before the window and finished in
        it counted as a sync without a read (Scale II's "2 OpenBao requests in 3 syncs" at
        50,000, where a sync lasts longest). Syncs are counted from the daemon's log, which costs
        it nothing, rather than by polling its /metrics."""
        time.sleep(3)  # the re-syncs the new namespaces triggered end
        intervals = self.args.idle_intervals
        timeout = (self.args.daemon_interval + 60) * (intervals + 1)
        opened = daemon_phase.wait_for_syncs(process, len(daemon_phase.sync_durations(process)) + 1, timeout)
        runs, log_from = daemon_phase.sync_runs(process), len(process.log())
        self.audit.mark()
        before = measure.request_totals(self.kube)
        cpu_before, started = daemon_phase.cpu_seconds(process), time.monotonic()
        daemon_phase.wait_for_syncs(process, opened + intervals, timeout)
        seconds = time.monotonic() - started
        cpu = daemon_phase.cpu_seconds(process) - cpu_before
        requests = measure.diff_requests(before, measure.request_totals(self.kube))
        runs = daemon_phase.sync_runs(process) - runs  # the metric counts triggered whole-spec syncs too
        vault = measure.wait_for_audit(self.audit, intervals)
        return {
            "seconds": round(seconds, 1),
            "syncs": intervals,
            "syncs_by_metric": runs,
            # Each is followed by a whole-spec sync from cached credentials (no OpenBao read).
            "watch_relists": process.log()[log_from:].count("expired (410); listing again"),
            "apiserver": requests.as_dict(),
            "syncd_requests_besides_watches": requests.syncd - requests.syncd_watches,
            "openbao_requests": len(vault),
            "openbao_by_path": vault,
            "daemon_cpu_seconds": round(cpu, 2),
            "daemon_cpu_seconds_per_minute": round(60 * cpu / seconds, 3) if seconds else None,
            "loadavg": [round(v, 2) for v in os.getloadavg()],
        }

    def _phase(self, measured: Any) -> dict[str, Any]:
        """Run one measurement under a CPU meter; the meter's figures go beside the result."""
        meter = self._meter()
        value = measured()
        result = value.as_dict() if hasattr(value, "as_dict") else dict(value)
        result["cpu"] = meter.stop()
        return result

    def _timed(self, action: Any) -> dict[str, Any]:
        started = time.monotonic()
        action()
        return {"seconds": round(time.monotonic() - started, 3)}


def _summary(entry: dict[str, Any]) -> dict[str, Any]:
    pick = {key: (entry.get(key) or {}).get("seconds") for key in ("syncd", "syncd_once", "floor", "kubectl")}
    daemon = entry.get("daemon") or {}
    pick["rss_kib"] = (daemon.get("memory_after_first_sync_kib") or {}).get("VmHWM")
    pick["p95"] = (daemon.get("new_namespace") or {}).get("p95")
    return pick


def _command(binary: list[str]) -> str:
    try:
        done = subprocess.run(binary, capture_output=True, text=True, check=False, timeout=30)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else ""


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line
    )
    binaries = find_binaries()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "kube_apiserver": binaries.kube_apiserver.parent.name,
        "openbao": _command([str(Path(sys.executable).parent / "bao"), "version"]),
        "kubectl": _command([str(contenders.KUBECTL), "version", "--client"]),
        "python": platform.python_version(),
        "syncd": syncd.__version__,
    }


class Interrupted(BaseException):
    """SIGINT or SIGTERM: the run ends through its `finally`, which stops the servers."""


def stop_on_signals() -> None:
    """SIGINT and SIGTERM end the run as an exception, so that the stack is stopped.

    Without this a SIGTERM killed the process at once and left kube-apiserver, etcd and OpenBao
    running (each in its own process group), and a run started in the background by a shell
    (`python -m bench.run ... &`) ignored SIGINT: such a shell starts it with SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler. A second signal during the cleanup is
    ignored: the cleanup is what the first one asked for."""

    def interrupt(signum: int, _frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("syncd").setLevel(logging.WARNING)
    started, wall_start = time.monotonic(), dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "date": wall_start.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            stack = Stack(Path(tmp) / "stack")
            stack.up()  # stops what it started if it fails or is interrupted
            try:
                # As installed (Helm crds/, the Kustomize base): the daemon's status objects are part
                # of what the idle figure holds at 0.
                install_pullsync_crd(kubectl_binary(), str(stack.kube.kubeconfig))
                results.update(Bench(stack, Path(tmp), args).run())
            finally:
                stack.down()
    except Interrupted as exc:
        log.warning("stopped by %s: servers stopped, no results written", exc)
        return 128 + int(getattr(signal, str(exc)))
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.render(args.out / "results.json", args.readme, args.out / "rollout.png")
    log.info("done in %.0fs; results in %s", results["wall_seconds"], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
