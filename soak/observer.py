"""The independent observer: reads the apiserver (as admin, with its own HTTP code) and the
credential ledger every poll, and records every violation with its time.

Checks on every poll:
- every managed Secret is whole (soak.validity), holds a generation no older than the one before
  the current, and never an older one than it held before (no going back);
- every Secret syncd does not own keeps the resourceVersion it was created with;
- every selected namespace holds the current credential (and no unselected one keeps a Secret)
  within the SLO of the later of: the last fault clearing, its own churn, the last reload;
- after each fault clears, the time until every selected namespace is right (its convergence).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from soak.churn import HAND_EDIT
from soak.credentials import Ledger
from soak.settings import CREDENTIALS, Settings, SpecPlan, specs
from soak.validity import judge

MANAGED_BY = "app.kubernetes.io/managed-by"
SPEC_LABEL = "syncd.io/secret"
REGISTRY = {plan.name: plan.registry for plan in CREDENTIALS}


@dataclass
class Violation:
    at: float
    check: str
    where: str
    detail: str


@dataclass
class FaultRecord:
    kind: str
    started: float
    cleared: float | None = None
    converged: float | None = None
    note: str = ""

    @property
    def convergence(self) -> float | None:
        return None if self.converged is None or self.cleared is None else self.converged - self.cleared


@dataclass
class Poll:
    at: float
    required: int
    wrong: int
    managed: int


@dataclass
class Knowledge:
    """What the churn told the observer."""

    unmanaged: dict[tuple[str, str], str] = field(default_factory=dict)  # -> resourceVersion at creation
    hand_edits: dict[tuple[str, str], str] = field(default_factory=dict)  # -> resourceVersion of the edit
    churned_at: dict[str, float] = field(default_factory=dict)
    unmanaged_since: dict[tuple[str, str], float] = field(default_factory=dict)  # when the churn told us
    # Namespaces the churn deleted: kube-controller-manager deletes every Secret in them, foreign too.
    deleted: set[str] = field(default_factory=set)


class Apiserver:
    """GETs as the admin client certificate."""

    def __init__(self, url: str, ca: Path, cert: Path, key: Path) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False  # $REQUESTS_CA_BUNDLE would replace our CA
        self.session.verify = str(ca)
        self.session.cert = (str(cert), str(key))

    def items(self, path: str) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.url}{path}", timeout=5)
        response.raise_for_status()
        return list(response.json()["items"])

    def list_and_judge(self, path: str, judge: Callable[[dict[str, Any]], None]) -> str:
        response = self.session.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        body = response.json()
        for item in body["items"]:
            judge(item)
        return str(body["metadata"]["resourceVersion"])

    def watch(self, path: str, version: str, judge: Callable[[dict[str, Any]], None], stop: threading.Event) -> str:
        """Stream events from `version`; returns the last version seen, or "" when it is too old (410)."""
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true", "timeoutSeconds": "60"}
        with self.session.get(f"{self.url}{path}", params=params, stream=True, timeout=(5, 90)) as response:
            if response.status_code == 410:
                return ""
            response.raise_for_status()
            for line in response.iter_lines():
                if stop.is_set() or not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return ""
                version = str(event["object"]["metadata"]["resourceVersion"])
                if event["type"] in ("ADDED", "MODIFIED"):
                    judge(event["object"])
        return version


class Observer:
    def __init__(self, settings: Settings, api: Apiserver, ledger: Ledger) -> None:
        self.settings = settings
        self.api = api
        self.ledger = ledger
        self.lock = threading.Lock()
        self.known = Knowledge()
        self.violations: list[Violation] = []
        self._reported: set[tuple[str, ...]] = set()
        self.faults: list[FaultRecord] = []
        self.polls: list[Poll] = []
        self.blind_polls = 0
        self.kv_variant = 0
        self.reloaded_at = 0.0
        self.last_clear = 0.0
        # The generation of each credential that a poll found in every namespace. A flag ("converged")
        # went stale the moment a rotation landed after the poll: a fault then rotated again on top of
        # a generation syncd had not fetched yet, and "two behind" was the pacing's doing.
        self._converged_generation: dict[str, int] = {}
        self._last_generation: dict[tuple[str, str], int] = {}
        self._wrong_since: dict[tuple[str, str], float] = {}

    # --- what the soak tells it ---------------------------------------------------------------------

    def churned(self, namespace: str) -> None:
        with self.lock:
            self.known.churned_at[namespace] = time.time()

    def deleted(self, namespace: str) -> None:
        with self.lock:
            self.known.deleted.add(namespace)

    def unmanaged(self, namespace: str, name: str, resource_version: str) -> None:
        with self.lock:
            self.known.unmanaged[(namespace, name)] = resource_version
            self.known.unmanaged_since[(namespace, name)] = time.time()

    def hand_edited(self, namespace: str, name: str, resource_version: str) -> None:
        with self.lock:
            self.known.hand_edits[(namespace, name)] = resource_version

    def reloaded(self, kv_variant: int) -> None:
        with self.lock:
            self.kv_variant, self.reloaded_at = kv_variant, time.time()

    def fault_started(self, kind: str) -> FaultRecord:
        record = FaultRecord(kind, time.time())
        with self.lock:
            self.faults.append(record)
        return record

    def fault_cleared(self, record: FaultRecord) -> None:
        with self.lock:
            record.cleared = self.last_clear = time.time()

    def converged(self, credential: str) -> bool:
        """Every selected namespace was seen holding the credential's generation that is current now."""
        return self._converged_generation.get(credential) == self.ledger.current(credential).number

    def all_converged(self) -> bool:
        return all(self.converged(plan.name) for plan in CREDENTIALS)

    def active_fault(self) -> bool:
        return any(f.cleared is None for f in self.faults)

    def settling(self) -> bool:
        """A fault is active or has not converged yet: rotations wait (see soak.run)."""
        return any(f.converged is None for f in self.faults)

    def record(self, check: str, where: str, detail: str, *key: str) -> None:
        identity = (check, where, *key)
        if identity in self._reported:
            return
        self._reported.add(identity)
        self.violations.append(Violation(time.time(), check, where, detail))

    # --- one poll -----------------------------------------------------------------------------------

    def poll(self) -> None:
        """Selection and convergence, from a LIST of namespaces and Secrets. (Every version of every
        Secret is judged from the watch, `saw_secret`: a poll would miss one repaired in under a second.)"""
        started = time.time()  # a rotation published after this cannot be judged converged by this poll
        try:
            namespaces = self.api.items("/api/v1/namespaces")
            secrets = self.api.items("/api/v1/secrets")
        except (requests.RequestException, ValueError, KeyError):
            self.blind_polls += 1
            return
        with self.lock:
            self._judge(namespaces, secrets, started)

    def _judge(self, namespaces: list[dict[str, Any]], secrets: list[dict[str, Any]], now: float) -> None:
        by_key = {(_ns(s), _name(s)): s for s in secrets}
        managed = {k: s for k, s in by_key.items() if _labels(s).get(MANAGED_BY) == "syncd"}
        for key, since in self.known.unmanaged_since.items():
            # A LIST sent before the churn created (and told us of) the Secret cannot hold it.
            if key not in by_key and since < now and key[0] not in self.known.deleted:
                self.record("unmanaged-untouched", "/".join(key), "a Secret syncd does not own was deleted")
        wrong, required = self._check_selection(namespaces, managed, specs(self.kv_variant), now)
        self._check_convergence(wrong, now)
        self.polls.append(Poll(now, required, len(wrong), len(managed)))

    def saw_secret(self, secret: dict[str, Any]) -> None:
        """One version of one Secret (from the watch, in order): whole, not going back, not foreign."""
        key = (_ns(secret), _name(secret))
        with self.lock:
            if _labels(secret).get(MANAGED_BY) == "syncd":
                self._check_managed(key, secret, specs(self.kv_variant))
                return
            version = self.known.unmanaged.get(key)
            if version is not None and _version(secret) != version and key[0] not in self.known.deleted:
                self.record(
                    "unmanaged-untouched", "/".join(key), "a Secret syncd does not own was written", _version(secret)
                )

    def _check_managed(self, key: tuple[str, str], secret: dict[str, Any], current: tuple[SpecPlan, ...]) -> None:
        where, version = "/".join(key), _version(secret)
        if _hand_edit(secret):
            return  # the churn's edit, not syncd's write; its repair is judged as convergence
        spec = next((s for s in current if s.name == _labels(secret).get(SPEC_LABEL)), None)
        if spec is None:
            self.record("valid", where, "a managed Secret of no spec", version)
            return
        verdict = judge(secret, REGISTRY[spec.credential], lambda p: self.ledger.generation_of(spec.credential, p))
        for problem in verdict.problems:
            self.record("valid", where, problem, version)
        if verdict.generation is not None:
            self._check_generation(key, spec, verdict.generation, secret)

    def _check_generation(self, key: tuple[str, str], spec: SpecPlan, generation: int, secret: dict[str, Any]) -> None:
        """Against the generation current when the apiserver stored this version, not when the watch
        delivers it: after an apiserver restart the watch resumes from the last version it saw and
        replays what was written meanwhile (both 20-minute runs reported every Secret of one spec
        "two behind" at that moment; the audit log shows syncd wrote none of them then)."""
        where, version = "/".join(key), _version(secret)
        written = _written_at(secret)
        newest = (
            self.ledger.current(spec.credential).number
            if written is None
            else self.ledger.current_at(spec.credential, written + 1)
        )
        if generation < newest - 1:
            self.record("no-going-back", where, f"holds generation {generation}, current is {newest}", version)
        before = self._last_generation.get(key, 0)
        if generation < before:
            self.record("no-going-back", where, f"went back from generation {before} to {generation}", version)
        self._last_generation[key] = max(before, generation)

    def _check_selection(
        self,
        namespaces: list[dict[str, Any]],
        managed: dict[tuple[str, str], dict[str, Any]],
        current: tuple[SpecPlan, ...],
        now: float,
    ) -> tuple[set[tuple[str, str]], int]:
        """(namespace, spec) pairs that are wrong now, and how many pairs were required to be right."""
        wrong: set[tuple[str, str]] = set()
        required = 0
        for namespace in namespaces:
            name = namespace["metadata"]["name"]
            if (
                _terminating(namespace)
                or now - max(self.known.churned_at.get(name, 0.0), self.reloaded_at) < self.settings.grace_seconds
            ):
                continue
            for spec in current:
                key = (name, spec.name)
                if key in self.known.unmanaged:
                    continue  # a conflict: syncd must leave it alone (checked above)
                selected = spec.selects(_labels(namespace))
                required += selected
                if not self._right(managed.get(key), spec, selected):
                    wrong.add(key)
        return wrong, required

    def _right(self, secret: dict[str, Any] | None, spec: SpecPlan, selected: bool) -> bool:
        if not selected:
            return secret is None  # pruned
        if secret is None or _hand_edit(secret):
            return False
        verdict = judge(secret, REGISTRY[spec.credential], lambda p: self.ledger.generation_of(spec.credential, p))
        return not verdict.problems and verdict.generation == self.ledger.current(spec.credential).number

    def _check_convergence(self, wrong: set[tuple[str, str]], now: float) -> None:
        for key in list(self._wrong_since):
            if key not in wrong:
                del self._wrong_since[key]
        for key in wrong:
            self._wrong_since.setdefault(key, now)
        for plan in CREDENTIALS:
            behind = any(_credential_of(k[1], self.kv_variant) == plan.name for k in wrong)
            current = self.ledger.current(plan.name)
            if not behind and current.published_at < now:
                self._converged_generation[plan.name] = current.number
            else:
                self._converged_generation.pop(plan.name, None)
        for fault in self.faults:
            if fault.cleared is not None and fault.converged is None and not wrong:
                fault.converged = now
                if now - fault.cleared > self.settings.slo_seconds:
                    self.record(
                        "convergence",
                        fault.kind,
                        f"converged {now - fault.cleared:.1f}s after it cleared",
                        str(fault.started),
                    )
        if self.active_fault():
            return
        for key, since in self._wrong_since.items():
            if now - max(since, self.last_clear) > self.settings.slo_seconds:
                self.record(
                    "convergence", "/".join(key), f"not right for over {self.settings.slo_seconds:.0f}s", str(since)
                )

    def finish(self) -> None:
        """Faults that never converged are violations."""
        with self.lock:
            for fault in self.faults:
                if fault.cleared is not None and fault.converged is None:
                    self.record("convergence", fault.kind, "never converged before the run ended", str(fault.started))

    def results(self) -> dict[str, Any]:
        with self.lock:
            return {
                "violations": [asdict(v) for v in self.violations],
                "faults": [asdict(f) | {"convergence": f.convergence} for f in self.faults],
                "polls": [asdict(p) for p in self.polls],
                "blind_polls": self.blind_polls,
                "unmanaged_secrets": len(self.known.unmanaged),
                "hand_edits": len(self.known.hand_edits),
            }


def _credential_of(spec_name: str, kv_variant: int) -> str:
    return next(s.credential for s in specs(kv_variant) if s.name == spec_name)


def _written_at(secret: dict[str, Any]) -> float | None:
    """When the apiserver stored this version: the newest managedFields time (whole seconds), if any."""
    times = [entry.get("time") for entry in (secret.get("metadata") or {}).get("managedFields") or []]
    stamps = [dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times if t]
    return max(stamps) if stamps else None


def _hand_edit(secret: dict[str, Any]) -> bool:
    return (secret.get("data") or {}).get(".dockerconfigjson") == HAND_EDIT


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _ns(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("namespace", ""))


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _version(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("resourceVersion", ""))


def _terminating(namespace: dict[str, Any]) -> bool:
    return (
        bool(namespace["metadata"].get("deletionTimestamp"))
        or (namespace.get("status") or {}).get("phase") == "Terminating"
    )


def watch_secrets(observer: Observer, stop: threading.Event) -> None:
    """Every version of every Secret, in order: a LIST (each item judged), then a watch from its
    resourceVersion; after a disconnect the watch resumes, after 410 Gone it lists again."""
    version = ""
    while not stop.is_set():
        try:
            if not version:
                version = observer.api.list_and_judge("/api/v1/secrets", observer.saw_secret)
            version = observer.api.watch("/api/v1/secrets", version, observer.saw_secret, stop)
        except (requests.RequestException, ValueError, KeyError):
            stop.wait(1.0)


def run_observer(observer: Observer, stop: threading.Event, every: float = 1.0) -> None:
    while not stop.is_set():
        started = time.monotonic()
        observer.poll()
        stop.wait(max(every - (time.monotonic() - started), 0.05))
