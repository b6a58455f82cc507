"""Fixtures for driving syncd against the real servers of the session stack."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import hvac
import pytest
import yaml
from kubernetes import client

from harness import Stack
from harness.kube_objects import namespace_of, secret_data
from harness.syncd_process import Start, SyncdProcess
from harness.vault import Vault
from syncd.cli.commands import main
from tests.integration import faults, soak_background

# Under pytest-xdist (`make test`), the file that runs longest (the image build) goes first and
# the others fill in around it: --dist loadfile hands files out in this order when the Makefile
# says --no-loadscope-reorder (xdist's own order, most tests first, put it near the end).
LONGEST_FIRST = ("tests/integration/test_image.py",)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first under xdist (after pytest-randomly's shuffle); the 3-minute soak's
    test last, waiting for the soak that runs in the background beside the suite meanwhile
    (soak_background.py)."""
    if hasattr(config, "workerinput"):
        rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))  # stable
    soak_background.schedule(config, items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    faults.RAN.append(item.nodeid)


@dataclass
class Run:
    code: int
    out: str
    err: str


RunSyncd = Callable[..., Run]


class WriteConfig(Protocol):
    def __call__(self, config: dict[str, Any], *, own_instance: bool = True) -> Path: ...


@pytest.fixture
def prefix() -> str:
    """A unique namespace prefix: globs in one test must not match another test's namespaces."""
    return f"s{uuid.uuid4().hex[:6]}"


@pytest.fixture
def instance() -> str:
    """This test's syncd instance (`instance:` in its configs), unless a config names its own.

    syncd prunes its own instance's Secrets of a spec (`prune` is the default) in every namespace it
    does not select, cluster-wide: two tests with the same instance and spec name would prune, and
    list in their plans, each other's Secrets.
    """
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def helper_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-credential-pass finds its GnuPG home and password store through the environment."""
    for key, value in stack.helper.env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def write_config(tmp_path: Path, stack: Stack, instance: str) -> WriteConfig:
    """Write a config; a `vault:` block gets the test server and a token file unless given, and the
    config gets the test's `instance` unless it names one (or `own_instance=False`: the default instance)."""
    token_file = tmp_path / "vault-token"
    token_file.write_text(stack.vault.token)

    def write(config: dict[str, Any], *, own_instance: bool = True) -> Path:
        if "vault" in config and not config["vault"]:
            config["vault"] = {
                "address": stack.vault.address,
                "allow_http": True,  # the test OpenBao listens on loopback without TLS
                "auth": {"method": "token", "token_file": str(token_file)},
            }
        document = {"instance": instance, **config} if own_instance else config
        path = tmp_path / f"syncd-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    return write


@pytest.fixture
def run_syncd(stack: Stack, capsys: pytest.CaptureFixture[str]) -> RunSyncd:
    """`syncd <args> --config F` in-process against the test cluster; returns exit code and output."""

    def run(*args: str, config: Path, log_level: str = "debug") -> Run:
        argv = [*args, "--config", str(config), "--kubeconfig", str(stack.kube.kubeconfig)]
        code = main([*argv, "--log-level", log_level, "--log-format", "json"])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def make_namespaces(core_v1: client.CoreV1Api) -> Callable[..., list[str]]:
    def make(*names: str, labels: dict[str, str] | None = None) -> list[str]:
        for name in names:
            meta = client.V1ObjectMeta(name=name, labels=labels or {})
            core_v1.create_namespace(client.V1Namespace(metadata=meta))
        return list(names)

    return make


def dockerconfig_of(core_v1: client.CoreV1Api, namespace: str, name: str) -> bytes:
    secret = core_v1.read_namespaced_secret(name, namespace)
    return base64.b64decode(secret_data(secret)[".dockerconfigjson"])


def secrets_named(core_v1: client.CoreV1Api, name: str, prefix: str) -> dict[str, client.V1Secret]:
    """Secrets called `name` in namespaces starting with `prefix`, by namespace."""
    found = core_v1.list_secret_for_all_namespaces(field_selector=f"metadata.name={name}").items
    return {namespace_of(s): s for s in found if namespace_of(s).startswith(prefix)}


def plan_rows(out: str) -> set[tuple[str, str, str]]:
    """(secret, namespace, action) of each Secret and ServiceAccount reference in `once --output json`:
    the first three columns of the table, read without depending on its layout."""
    rows: set[tuple[str, str, str]] = set()
    for result in json.loads(out):
        rows |= {(result["secret"], n["namespace"], n["action"]) for n in result["namespaces"]}
        rows |= {(a["secret"], a["namespace"], a["action"]) for a in result["service_accounts"]}
    return rows


def auths(content: bytes) -> dict[str, Any]:
    return dict(json.loads(content)["auths"])


@pytest.fixture
def start_syncd(stack: Stack, tmp_path: Path, instance: str) -> Iterator[Start]:
    """`syncd run` of a config, with the test's `instance` unless the config names one."""
    started: list[SyncdProcess] = []

    def start(config: dict[str, Any], *, name: str = "a", env: dict[str, str] | None = None) -> SyncdProcess:
        document = {"instance": instance, **config}
        process = SyncdProcess(document, tmp_path / name, stack.kube.kubeconfig, {**stack.helper.env, **(env or {})})
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop_quietly()


@pytest.fixture
def vault_path(vault_client: hvac.Client) -> str:
    path = f"daemon/{uuid.uuid4().hex[:8]}"
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": "d-1"})
    return path


@pytest.fixture
def private_vault(tmp_path: Path) -> Iterator[Vault]:
    """An OpenBao of this test's own, so that stopping it (a dev server comes back empty) disturbs no other test."""
    vault = Vault(tmp_path / "own-vault")
    vault.start()
    try:
        yield vault
    finally:
        vault.stop()


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Helm's cache, config and data folders: never the user's own."""
    return tmp_path_factory.mktemp("helm-home")
