"""What the fault tests (tests/integration/test_faults_*.py) share.

- `check_secrets`: every managed Secret read back and judged whole: valid JSON, the expected
  registries and logins, the hash annotation matching the data. "Nothing lost" is this check.
- `snapshot`: resourceVersion and data of Secrets, to prove a failed run changed nothing.
- `secret_value` / `record`: a session-wide ledger of every secret value the fault tests hand
  to syncd, and of every text syncd produced for them (CLI output, logs, /metrics, Events,
  exception messages). `fault_capture` searches what each test recorded for every value after
  it, in any order; `test_faults_secrecy.py` adds a scenario of its own and searches the whole
  ledger of the session so far.
- `PrivateKube`: an etcd + kube-apiserver of one module's own, for faults that would disturb the
  session's cluster (kill -9 of the apiserver, an etcd restart, throttling flags).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, config

from harness.accounts import cluster_admin_kubeconfig
from harness.kube import Kube
from harness.kube_objects import (
    annotations_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    resource_version,
    secret_data,
)
from harness.syncd_process import SyncdProcess

MANAGED_BY = "app.kubernetes.io/managed-by"
SECRET_VALUES: dict[str, str] = {}  # every secret value the fault tests used -> a label for the report
TEXTS: list[tuple[str, str]] = []  # (where, text): every text syncd produced in the fault tests
RAN: list[str] = []  # node ids of the tests this process ran, in order (conftest: pytest_runtest_setup)
CAPTURED: list[str] = []  # node ids of the tests whose texts fault_capture took, even when there were none


# --- the secrecy ledger ------------------------------------------------------------------------


def secret_value(label: str, *, username: str = "robot", value: str | None = None) -> str:
    """A unique secret (or `value`), registered with the forms in which it could leak."""
    value = value if value is not None else f"{label}-{uuid.uuid4().hex}"
    for form in leak_forms(value, username):
        SECRET_VALUES.setdefault(form, label)
    return value


def leak_forms(value: str, username: str) -> list[str]:
    """Raw, JSON-escaped, base64 of it, and base64 of the `username:value` login of a Secret."""
    forms = [value, json.dumps(value)[1:-1], base64.b64encode(value.encode()).decode()]
    forms.append(base64.b64encode(f"{username}:{value}".encode()).decode())
    return [f for f in forms if len(f) >= 8]


def forms_found(texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(label of the secret, where it was found) for every registered value found in any text."""
    found = []
    for where, text in texts:
        found += [(label, where) for value, label in SECRET_VALUES.items() if value in text]
    return found


def record(where: str, *texts: str | None) -> None:
    TEXTS.extend((where, text) for text in texts if text)


def record_exception(where: str, error: BaseException) -> None:
    record(where, str(error), repr(error), "".join(traceback.format_exception(error)))


def record_events(where: str, core: client.CoreV1Api) -> None:
    """Every Event in a cluster, as text: reason, message and the object it is about."""
    events = core.list_event_for_all_namespaces().items
    record(where, "\n".join(f"{e.metadata.namespace} {e.reason} {e.message} {e.involved_object}" for e in events))


def record_daemon(where: str, syncd: SyncdProcess) -> None:
    """The daemon's log and, while it runs, its /metrics text."""
    if syncd.process is not None and syncd.process.poll() is None:
        record(where, syncd.metrics())
    record(where, syncd.log())


@pytest.fixture
def fault_capture(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record (DEBUG and up) of the test goes to the ledger, as syncd's handlers see them;
    then no secret value registered so far may be in anything the test recorded."""
    # The test's own kubernetes client logs Secret bodies at DEBUG; that is the test reading, not syncd.
    caplog.set_level(logging.INFO, logger="kubernetes")
    caplog.set_level(logging.DEBUG)
    first = len(TEXTS)
    yield
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]
    record(request.node.nodeid, "\n".join(formatter.format(r) for r in records))
    CAPTURED.append(request.node.nodeid)
    found = forms_found(TEXTS[first:])
    assert found == [], f"secret values (by label) found in what syncd produced: {found[:10]}"


def error_lines(log: str) -> list[dict[str, Any]]:
    """The error-level entries of a JSON log."""
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [e for e in entries if e.get("level") == "error"]


# --- what a managed Secret must look like ---------------------------------------------------------


@dataclass(frozen=True)
class Login:
    username: str
    password: str


def check_secret(secret: client.V1Secret, spec: str, expected: dict[str, Login]) -> None:
    """One managed Secret, whole: ours, valid JSON, exactly the expected registries, every login complete."""
    where = f"{namespace_of(secret)}/{name_of(secret)}"
    assert secret.type == "kubernetes.io/dockerconfigjson", where
    assert labels_of(secret).get(MANAGED_BY) == "syncd", where
    assert labels_of(secret).get("syncd.io/secret") == spec, where
    content = base64.b64decode(secret_data(secret)[".dockerconfigjson"])
    annotations = annotations_of(secret)
    assert annotations.get("syncd.io/content-hash") == "sha256:" + hashlib.sha256(content).hexdigest(), where
    auths = json.loads(content)["auths"]
    assert set(auths) == set(expected), where
    for registry, login in expected.items():
        entry = auths[registry]
        assert (entry["username"], entry["password"]) == (login.username, login.password), where
        assert entry["auth"] == base64.b64encode(f"{login.username}:{login.password}".encode()).decode(), where


def managed(core: client.CoreV1Api, spec: str, prefix: str) -> dict[str, client.V1Secret]:
    """Every Secret of one spec in the test's namespaces (named `prefix`...), by namespace (a LIST by
    label, as syncd does). Other tests' Secrets of the same spec name are not the test's to count."""
    found = core.list_secret_for_all_namespaces(label_selector=f"syncd.io/secret={spec}").items
    return {namespace_of(s): s for s in found if namespace_of(s).startswith(prefix)}


def check_secrets(
    core: client.CoreV1Api, spec: str, namespaces: Iterable[str], expected: dict[str, Login]
) -> dict[str, client.V1Secret]:
    """Every namespace holds the spec's Secret and each one is whole."""
    wanted = set(namespaces)
    found = {ns: secret for ns, secret in managed(core, spec, "").items() if ns in wanted}
    missing = sorted(wanted - set(found))
    assert missing == [], f"{len(missing)} namespaces without {spec}: {missing[:5]}"
    for secret in found.values():
        check_secret(secret, spec, expected)
    return found


def snapshot(core: client.CoreV1Api, name: str, namespaces: Iterable[str]) -> dict[str, tuple[str, Any, Any]]:
    """resourceVersion, data and labels of the Secret `name` in each namespace ("absent" when missing)."""
    wanted = set(namespaces)
    found = core.list_secret_for_all_namespaces(field_selector=f"metadata.name={name}").items
    state: dict[str, tuple[str, Any, Any]] = dict.fromkeys(wanted, ("absent", None, None))
    for s in found:
        if namespace_of(s) in wanted:
            state[namespace_of(s)] = (resource_version(s), s.data, meta(s).labels)
    return state


def add_unmanaged(core: client.CoreV1Api, namespaces: Iterable[str], name: str = "not-ours") -> None:
    """A Secret syncd must never touch, in each namespace."""
    for namespace in namespaces:
        secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"owner": "someone-else"}),
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": base64.b64encode(b'{"auths":{"other.example":{"auth":"eDp5"}}}').decode()},
        )
        core.create_namespaced_secret(namespace, secret)


def make_namespaces(core: client.CoreV1Api, names: list[str], labels: dict[str, str] | None = None) -> list[str]:
    def create(name: str) -> None:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or {})))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, names))
    return names


def docker_config_file(path: Path, logins: dict[str, Login]) -> Path:
    """A docker config.json holding `logins` in `auths`, as `docker login` writes them."""
    auths = {
        registry: {"auth": base64.b64encode(f"{login.username}:{login.password}".encode()).decode()}
        for registry, login in logins.items()
    }
    path.write_text(json.dumps({"auths": auths}))
    return path


# --- syncd as a subprocess ----------------------------------------------------------------------------


@dataclass
class OnceProcess:
    """`python -m syncd once` in the background, its output in files."""

    argv: list[str]
    directory: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> OnceProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "out").open("wb") as out, (self.directory / "err").open("wb") as err:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return self

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def out(self) -> str:
        return (self.directory / "out").read_text(errors="replace")

    @property
    def err(self) -> str:
        return (self.directory / "err").read_text(errors="replace")


def once_process(config_path: Path, kubeconfig: Path, directory: Path, *extra: str) -> OnceProcess:
    argv = [sys.executable, "-m", "syncd", "once", "--config", str(config_path), "--kubeconfig", str(kubeconfig)]
    argv += ["--log-format", "json", "--log-level", "info", *extra]
    return OnceProcess(argv, directory).start()


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


# --- a cluster of one module's own ------------------------------------------------------------------


class PrivateKube:
    """etcd + kube-apiserver for one test module, with an admin client and a ServiceAccount login."""

    def __init__(self, state_dir: Path, extra_args: list[str] | None = None) -> None:
        self.kube = Kube(state_dir, extra_args=extra_args)
        self.dir = state_dir

    def __enter__(self) -> PrivateKube:
        self.kube.start()
        self.api = config.new_client_from_config(config_file=str(self.kube.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        return self

    def __exit__(self, *_: object) -> None:
        self.kube.stop()

    @property
    def kubeconfig(self) -> Path:
        return self.kube.kubeconfig

    def service_account_kubeconfig(self, name: str = "syncd") -> Path:
        """A kubeconfig logging in as a cluster-admin ServiceAccount: a user outside `system:masters`,
        which the apiserver exempts from max-in-flight limits and API Priority and Fairness."""
        namespace = f"{name}-system"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        return cluster_admin_kubeconfig(self.kube, self.api, namespace, name, self.dir / f"{name}-kubeconfig")

    def apiserver_metrics(self) -> str:
        assert self.kube.pki is not None
        pki = self.kube.pki
        response = requests.get(
            f"{self.kube.url}/metrics",
            timeout=10,
            verify=str(pki.ca_cert),
            cert=(str(pki.admin_cert), str(pki.admin_key)),
        )
        response.raise_for_status()
        return response.text

    def kill_apiserver(self) -> None:
        """SIGKILL, no graceful shutdown: in-flight requests are cut off."""
        self.kube.kill_apiserver()


def syncd_daemon(config_doc: dict[str, Any], directory: Path, kubeconfig: Path) -> SyncdProcess:
    """`syncd run` against any cluster (the `start_syncd` fixture is tied to the session's)."""
    return SyncdProcess(config_doc, directory, kubeconfig, {}).start()
