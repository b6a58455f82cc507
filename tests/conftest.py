"""Session-wide real servers (harness/) and a fresh namespace per test."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client, config

from harness import Stack
from harness.kube_objects import install_pullsync_crd
from harness.kubectl import kubectl_binary
from tests.integration import soak_background


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    """pytest-xdist's controller (which loads this file, not tests/integration/conftest.py): the
    soak starts here, beside the workers, once one of them has collected its test."""
    soak_background.collected_by_a_worker(node.config, node.workerinput["testrunuid"], list(ids))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A soak this process started and whose test never came (a stopped run) is stopped."""
    soak_background.stop(session.config)


@pytest.fixture(autouse=True)
def _no_syncd_log_handler_outlives_its_test() -> Iterator[None]:
    """A test that runs syncd's CLI in-process gets syncd.core.logs.setup()'s handler on the root
    logger, writing to the stderr pytest captured for that test. Left there, every later record
    from any thread went to a closed stream ("--- Logging error --- I/O operation on closed file")."""
    yield
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "syncd_handler", False)]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every server, started once per session. A server that cannot start fails the run."""
    servers = Stack(tmp_path_factory.mktemp("stack"))
    servers.up()
    try:
        # As every install of syncd has it (Helm crds/, the Kustomize base): its status objects.
        install_pullsync_crd(kubectl_binary(), str(servers.kube.kubeconfig))
        yield servers
    finally:
        servers.down()


@pytest.fixture(scope="session")
def kube_api(stack: Stack) -> client.ApiClient:
    """A cluster-admin client of the test apiserver."""
    api: client.ApiClient = config.new_client_from_config(config_file=str(stack.kube.kubeconfig))
    return api


@pytest.fixture
def core_v1(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api) -> str:
    """A namespace of this test's own (never deleted: no controller-manager finishes deletes)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def vault_client(stack: Stack) -> hvac.Client:
    return hvac.Client(url=stack.vault.address, token=stack.vault.token)


@pytest.fixture(scope="session")
def state_dir(stack: Stack) -> Path:
    return stack.dir
