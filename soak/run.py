"""One soak run, start to finish: servers, population, replicas, the loops, the faults, the verdicts."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.wait import TimedOut, wait_until
from soak import audit, faults, judge_metrics
from soak.alerts import Prometheus, judge_alerts, run_recorder
from soak.background import RotationCounts, run_reloads, run_rotations
from soak.churn import Churn, run_churn
from soak.credentials import CredentialStore, Ledger
from soak.observer import Apiserver, Observer, run_observer, watch_secrets
from soak.proxy import Proxy
from soak.replicas import Replica, syncd_config
from soak.sabotage import sabotage
from soak.samples import Sample, run_sampler
from soak.servers import Servers, replica_user
from soak.settings import CREDENTIALS, Settings, specs

REPLICAS = ("syncd-a", "syncd-b")
# Room left after the last fault for its convergence (they take seconds; finish() waits up to the SLO more).
TAIL_SECONDS = 15.0


class Soak:
    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.servers = Servers(state_dir)
        self.ledger = Ledger()
        self.store = CredentialStore(self.servers.vault, self.servers.helper, self.ledger)
        self.replicas: list[Replica] = []
        self.proxy: Proxy | None = None
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.vault_down = False
        self.rotations = RotationCounts()
        self.reloads: dict[str, int] = {}
        self.started_at = 0.0
        self.sabotaged: list[str] = []

    # --- setup ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        started = time.time()
        self.servers.start()
        pki = self.servers.kube.pki
        assert pki is not None
        self.observer = Observer(
            self.settings, Apiserver(self.servers.kube.url, pki.ca_cert, pki.admin_cert, pki.admin_key), self.ledger
        )
        for plan in CREDENTIALS:
            self.store.rotate(plan)
        self.first_kv_value = self.ledger.current_value(CREDENTIALS[0].name)  # for --sabotage only
        self.churn = Churn(self.servers.core, self.observer, random.Random(f"churn-{self.settings.seed}"))
        self.churn.populate(self.settings.namespaces)
        if self.settings.use_proxy:
            self.proxy = Proxy(self.servers.kube.url, pki.ca_cert, self.settings.seed)
            self.proxy.start()
        self._start_replicas()
        self.prometheus = Prometheus(self.servers.dir, [f"127.0.0.1:{r.port}" for r in self.replicas])
        self.prometheus.start()
        self._spawn(run_observer, self.observer, self.stop)
        self._spawn(watch_secrets, self.observer, self.stop)
        self._spawn(run_sampler, self.replicas, self.samples, self.stop)
        self._spawn(run_recorder, self.prometheus, self.stop)
        self.setup_seconds = time.time() - started
        self.initial_convergence = self._wait(lambda: self.observer.all_converged() and bool(self.observer.polls), 120)

    def _start_replicas(self) -> None:
        token_file = self.servers.dir / "vault-token"
        token_file.write_text(self.servers.vault.token)
        server = self.proxy.url if self.proxy else None
        for name in REPLICAS:
            kubeconfig = self.servers.replica_kubeconfig(name, server)
            replica = Replica(name, self.servers.dir / name, kubeconfig, self.servers.replica_env())
            replica.write_config(syncd_config(self.settings, self.servers.vault.address, token_file, replica.port, 0))
            replica.start()
            self.replicas.append(replica)
        self.token_file = token_file

    def reload(self, variant: int) -> None:
        for replica in self.replicas:
            document = syncd_config(self.settings, self.servers.vault.address, self.token_file, replica.port, variant)
            replica.write_config(document)
        self.observer.reloaded(variant)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"soak-{target.__name__}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _wait(self, condition: Callable[[], bool], timeout: float) -> float | None:
        """Seconds until `condition` held, or None: a soak records a miss and carries on."""
        try:
            return wait_until(condition, timeout, "convergence", interval=0.5)
        except TimedOut:
            return None

    # --- the run --------------------------------------------------------------------------------------

    def run(self) -> None:
        self.started_at = time.time()
        self._spawn(run_churn, self.churn, self.stop, self.settings.churn_every)
        self._spawn(self._rotations)
        self._spawn(run_reloads, self.settings, self.observer, self.reload, self.reloads, self.stop)
        rng = random.Random(f"gaps-{self.settings.seed}")
        planned = faults.plan(self.settings.seed, 1000, self.settings.lease_seconds, self.settings.fault_seconds)
        self.planned = []
        for fault in planned:
            time.sleep(rng.uniform(*self.settings.fault_gap))
            self._maybe_sabotage()
            if self._remaining() < fault.seconds + TAIL_SECONDS:
                break
            self.planned.append(fault)
            if not self._one_fault(fault):
                self.planned.pop()
                break
        time.sleep(max(self._remaining(), 0))
        # The last fault may have cleared in the tail: its last-success check gets its whole SLO,
        # as every earlier fault had, before the samples stop (else a slow-but-in-time metric,
        # under load, read as "never advanced").
        cleared = [f.cleared for f in self.observer.faults if f.cleared is not None]
        if cleared:
            self._wait(self._every_last_success_seen, max(cleared) + self.settings.slo_seconds - time.time())

    def _every_last_success_seen(self) -> bool:
        names = [s.name for s in specs(0)]
        cleared = [f.cleared for f in self.observer.faults if f.cleared is not None]
        return all(judge_metrics.last_success_after(self.samples, at, names) is not None for at in cleared)

    def _maybe_sabotage(self) -> None:
        if not self.settings.sabotage or self.sabotaged or self._remaining() > self.settings.duration / 2:
            return
        standby = next((r for r in self.replicas if r is not faults.leader(self.replicas)), self.replicas[0])
        self.sabotaged = sabotage(standby, self.observer, self.first_kv_value)
        print(f"[soak] sabotage as {standby.name}: {self.sabotaged}", flush=True)

    def _rotations(self) -> None:
        run_rotations(
            settings=self.settings,
            store=self.store,
            observer=self.observer,
            vault_down=lambda: self.vault_down,
            counts=self.rotations,
            stop=self.stop,
        )

    def _remaining(self) -> float:
        return self.settings.duration - (time.time() - self.started_at)

    def _one_fault(self, fault: faults.PlannedFault) -> bool:
        """Start, clear and follow one fault; False if it could not start."""
        with self.store.turn:  # no rotation between "converged" and this fault's own
            # Held, not given up on: a fault that rotated on top of a generation syncd had not fetched
            # would make "two behind" the soak's doing. A rotation that is late is the observer's
            # convergence finding already.
            if self._wait(self.observer.all_converged, max(self._remaining() - TAIL_SECONDS, 0)) is None:
                print("[soak] the last rotation never converged: no more faults", flush=True)
                return False
            self.vault_down = fault.kind in faults.VAULT_KINDS
            record = self.observer.fault_started(fault.kind)
            faults.rotate_at_start(fault, self)
        print(f"[soak] {time.strftime('%H:%M:%S')} fault {fault.kind} for {fault.seconds:.1f}s", flush=True)

        def cleared() -> None:
            self.vault_down = False
            self.observer.fault_cleared(record)

        record.note = faults.inject(fault, self, cleared)
        took = self._wait(lambda: record.converged is not None, 3 * self.settings.slo_seconds)
        print(f"[soak] {time.strftime('%H:%M:%S')}   {record.note}; converged after {record.convergence}", flush=True)
        if took is None:
            print("[soak]   did not converge: going on", flush=True)
        return True

    # --- the end --------------------------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Stop the churn, let everything settle, stop the replicas, and judge."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        final = self._settle()
        self.observer.finish()
        exits = {r.name: r.terminate() for r in self.replicas}
        return self._verdicts(final, exits)

    def _settle(self) -> float | None:
        stop = threading.Event()
        thread = threading.Thread(target=run_observer, args=(self.observer, stop), daemon=True)
        thread.start()
        took = self._wait(self.observer.all_converged, self.settings.slo_seconds)
        stop.set()
        thread.join(timeout=10)
        return took

    def _verdicts(self, final: float | None, exits: dict[str, int | None]) -> dict[str, Any]:
        observed = self.observer.results()
        users = {replica_user(name): name for name in REPLICAS}
        claims, writes = audit.claims_and_writes(audit.read_events(self.servers.audit_log), set(users))
        writer_violations = audit.judge_writers(claims, writes, self.settings.lease_seconds)
        slopes = judge_metrics.slopes(self.samples)
        results: dict[str, Any] = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.settings).items()},
            "started_at": self.started_at,
            "setup_seconds": self.setup_seconds,
            "initial_convergence_seconds": self.initial_convergence,
            "final_convergence_seconds": final,
            "replica_exit_codes": exits,
            "sabotage": self.sabotaged,
            "replica_starts": {r.name: r.starts for r in self.replicas},
            "churn": {"done": self.churn.counts.done, "failed": self.churn.counts.failed},
            "rotations": asdict(self.rotations),
            "generations": self.ledger.history(),  # to place a no-going-back finding against the rotations
            "reloads": self.reloads.get("reloads", 0),
            "throttled_requests": self.proxy.throttled if self.proxy else 0,
            "proxied_requests": self.proxy.forwarded if self.proxy else 0,
            "writes_by_replica": {users[u]: sum(1 for w in writes if w.user == u) for u in users},
            "lease_claims": len(claims),
            "leader_intervals": [
                (users[u], a, b) for u, a, b in audit.leader_intervals(claims, self.settings.lease_seconds)
            ],
            "observer": observed,
            "writer_violations": [asdict(v) | {"user": users[v.user]} for v in writer_violations],
            "counter_violations": judge_metrics.counters_monotonic(self.samples),
            "last_success_after_fault": self._last_success(observed["faults"]),
            "slopes": [asdict(s) for s in slopes],
            "leaks": [asdict(s) for s in judge_metrics.leaks(slopes)],
            "alerts": judge_alerts(self.prometheus.states, observed["faults"], self.settings.slo_seconds),
            "alert_rule_errors": self.prometheus.rule_errors(),
            "alert_states": [asdict(s) for s in self.prometheus.states if s.state == "firing"],
            "usage": [(s.at, s.replica, s.pid, s.rss_bytes, s.threads, s.fds) for s in self.samples],
        }
        results["violations"] = all_violations(results)
        return results

    def _last_success(self, observed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [s.name for s in specs(0)]
        return [
            {
                "kind": f["kind"],
                "started": f["started"],
                "seconds": judge_metrics.last_success_after(self.samples, f["cleared"], names),
            }
            for f in observed
            if f.get("cleared") is not None
        ]

    def teardown(self) -> None:
        self.stop.set()
        for replica in self.replicas:
            replica.terminate()
        for part in (getattr(self, "prometheus", None), self.proxy):
            if part is not None:
                part.stop()
        self.servers.stop()


def all_violations(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every violation of every check, one list, each with its check's name and time."""
    found = [dict(v) for v in results["observer"]["violations"]]
    found += [
        {"at": v["at"], "check": "single-writer", "where": v["user"], "detail": f"{v['reason']}: {v['what']}"}
        for v in results["writer_violations"]
    ]
    found += [
        {"at": v["at"], "check": "metrics", "where": v["replica"], "detail": f"counter went down: {v['series']}"}
        for v in results["counter_violations"]
    ]
    slo = results["settings"]["slo_seconds"]
    for item in results["last_success_after_fault"]:
        if item["seconds"] is None or item["seconds"] > slo:
            found.append(
                {
                    "at": item["started"],
                    "check": "metrics",
                    "where": item["kind"],
                    "detail": f"last success advanced after {item['seconds']}",
                }
            )
    for verdict in results["alerts"]:
        for alert in verdict["expected_missing"]:
            found.append(
                {
                    "at": verdict["started"],
                    "check": "alerts",
                    "where": verdict["kind"],
                    "detail": f"{alert} did not fire",
                }
            )
        for alert in verdict["still_firing_after"]:
            found.append(
                {
                    "at": verdict["started"],
                    "check": "alerts",
                    "where": verdict["kind"],
                    "detail": f"{alert} still firing after the SLO",
                }
            )
    found += [{"at": 0, "check": "alerts", "where": "rules", "detail": e} for e in results["alert_rule_errors"]]
    found += [
        {
            "at": 0,
            "check": "leak",
            "where": f"{s['replica']} pid {s['pid']}",
            "detail": f"RSS +{s['rss_mb_per_hour']:.1f} MB/h",
        }
        for s in results["leaks"]
    ]
    for name, code in results["replica_exit_codes"].items():
        if code != 0:
            found.append({"at": 0, "check": "shutdown", "where": name, "detail": f"exit code {code} on SIGTERM"})
    return sorted(found, key=lambda v: v["at"])


def write_results(results: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-seed{results['settings']['seed']}-{int(results['settings']['duration'])}s.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    return path
