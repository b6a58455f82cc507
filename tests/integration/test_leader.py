"""Leader election against the real apiserver: one leader, handover on release, takeover on death.

Leases are 2s here (retry every ~0.67s, renew deadline ~1.33s). Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config

from harness import Stack
from harness.wait import wait_until as harness_wait_until
from syncd.kube.elector import LeaderElector

pytestmark = pytest.mark.integration

LEASE = dt.timedelta(seconds=2)
SECONDS = LEASE.total_seconds()
POLL = 0.02
# Takeover times are measured to a few hundredths of a second: poll that often.
wait_until = functools.partial(harness_wait_until, interval=POLL)


class Changes:
    """Records on_change calls, thread-safely, with the monotonic time of each."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, float]] = []
        self._lock = threading.Lock()

    def __call__(self, leading: bool) -> None:
        with self._lock:
            self.calls.append((leading, time.monotonic()))

    def values(self) -> list[bool]:
        with self._lock:
            return [leading for leading, _ in self.calls]

    def first(self, leading: bool) -> float | None:
        with self._lock:
            return next((at for value, at in self.calls if value == leading), None)


MakeElector = Callable[..., LeaderElector]


@pytest.fixture
def lease_name() -> str:
    return f"syncd-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def make_elector(kube_api: client.ApiClient, namespace: str, lease_name: str) -> Iterator[MakeElector]:
    """Started electors on this test's Lease; all are stopped (without release) at teardown."""
    started: list[LeaderElector] = []

    def make(
        identity: str, *, api: client.ApiClient | None = None, on_change: Callable[[bool], None] | None = None
    ) -> LeaderElector:
        elector = LeaderElector(
            api or kube_api,
            namespace=namespace,
            name=lease_name,
            identity=identity,
            lease_duration=LEASE,
            on_change=on_change,
        )
        elector.start()
        started.append(elector)
        return elector

    yield make
    for elector in started:
        elector.stop(release=False)


@pytest.fixture
def read_lease(kube_api: client.ApiClient, namespace: str, lease_name: str) -> Callable[[], dict[str, Any]]:
    leases = client.CoordinationV1Api(kube_api)

    def read() -> dict[str, Any]:
        spec = leases.read_namespaced_lease(lease_name, namespace).spec
        assert spec is not None
        return {
            "holder": spec.holder_identity,
            "transitions": spec.lease_transitions,
            "acquire": spec.acquire_time,
            "renew": spec.renew_time,
            "seconds": spec.lease_duration_seconds,
        }

    return read


def one_leader(*electors: LeaderElector) -> LeaderElector:
    """Wait until one leads; assert it is the only one."""
    wait_until(lambda: any(e.is_leader() for e in electors), 4 * SECONDS, what="someone leads")
    leaders = [e for e in electors if e.is_leader()]
    assert len(leaders) == 1
    return leaders[0]


def watch_for_two_leaders(electors: tuple[LeaderElector, ...], stop: threading.Event, seen: list[float]) -> None:
    """Background sampler: records the time of any moment when two electors claim to lead."""
    while not stop.is_set():
        if sum(e.is_leader() for e in electors) > 1:
            seen.append(time.monotonic())
        time.sleep(POLL / 2)


@pytest.fixture
def never_two_leaders() -> Iterator[Callable[..., None]]:
    """Sample is_leader() of the given electors for the rest of the test; fail if two ever lead."""
    stop = threading.Event()
    seen: list[float] = []
    threads: list[threading.Thread] = []

    def watch(*electors: LeaderElector) -> None:
        thread = threading.Thread(target=watch_for_two_leaders, args=(electors, stop, seen), daemon=True)
        thread.start()
        threads.append(thread)

    yield watch
    stop.set()
    for thread in threads:
        thread.join()
    assert not seen, "two electors reported is_leader() at once"


def test_exactly_one_leads_and_the_lease_names_it(
    make_elector: MakeElector, read_lease: Callable[[], dict[str, Any]], never_two_leaders: Callable[..., None]
) -> None:
    changes_a, changes_b = Changes(), Changes()
    a = make_elector("host-a_1", on_change=changes_a)
    b = make_elector("host-b_2", on_change=changes_b)
    never_two_leaders(a, b)
    leader = one_leader(a, b)
    standby = b if leader is a else a

    lease = read_lease()
    assert lease["holder"] == ("host-a_1" if leader is a else "host-b_2")
    assert lease["seconds"] == 2
    assert lease["transitions"] == 0  # the first holder of a new Lease is no transition

    # Over two lease durations the leader keeps renewing and the standby stays a standby.
    first_renew = lease["renew"]
    assert not standby.wait_for_leadership(2 * SECONDS)
    assert leader.is_leader()
    assert read_lease()["renew"] > first_renew
    assert (changes_a.values() if leader is a else changes_b.values()) == [True]
    assert (changes_b.values() if leader is a else changes_a.values()) == []


def test_release_hands_over_within_a_lease_duration(
    make_elector: MakeElector, read_lease: Callable[[], dict[str, Any]], never_two_leaders: Callable[..., None]
) -> None:
    changes_a, changes_b = Changes(), Changes()
    a = make_elector("host-a_1", on_change=changes_a)
    b = make_elector("host-b_2", on_change=changes_b)
    never_two_leaders(a, b)
    leader = one_leader(a, b)
    standby = b if leader is a else a
    before = read_lease()

    leader.stop(release=True)
    assert not leader.is_leader()
    took = wait_until(standby.is_leader, SECONDS, what="standby leads after release")
    print(f"takeover after release: {took:.3f}s after stop() returned")

    after = read_lease()
    assert after["holder"] == ("host-b_2" if leader is a else "host-a_1")
    assert after["transitions"] == before["transitions"] + 1
    leader_changes, standby_changes = (changes_a, changes_b) if leader is a else (changes_b, changes_a)
    assert leader_changes.values() == [True, False]
    assert standby_changes.values() == [True]


def test_dead_holder_is_replaced_after_its_lease_lapses(
    make_elector: MakeElector, read_lease: Callable[[], dict[str, Any]], never_two_leaders: Callable[..., None]
) -> None:
    a = make_elector("host-a_1")
    b = make_elector("host-b_2")
    never_two_leaders(a, b)
    leader = one_leader(a, b)
    standby = b if leader is a else a

    leader.stop(release=False)  # the thread ends and the Lease is left as it was: a crash
    last = read_lease()
    assert last["holder"] == ("host-a_1" if leader is a else "host-b_2")

    took = wait_until(standby.is_leader, 2 * SECONDS, what="standby takes over a dead holder's lease")
    print(f"takeover after holder death: {took:.3f}s after stop")
    after = read_lease()
    assert after["holder"] == ("host-b_2" if leader is a else "host-a_1")
    assert after["transitions"] == last["transitions"] + 1
    # Not before the lease lapsed: the takeover was stamped after the last renewal + the duration.
    assert after["acquire"] >= last["renew"] + dt.timedelta(seconds=last["seconds"])


class Proxy:
    """A TCP relay in front of the apiserver that can refuse, or swallow, every connection.

    The elector deep-copies its caller's client configuration (with urllib3 retries off), so
    pointing the caller's `configuration.host` elsewhere after construction changes nothing for
    it; a relay cuts the elector off without touching its client, and can also play an apiserver
    that accepts connections but never answers, which is the case timeouts must handle.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "forward"
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str) -> None:
        """forward | refuse (accept, then close at once) | blackhole (accept, never answer)."""
        with self._lock:
            self.mode = mode
            self._drop_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_all()
        self._server.close()

    def _drop_all(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                if self._closed or mode == "refuse":
                    conn.close()
                    continue
                self._sockets.append(conn)
                if mode == "blackhole":
                    threading.Thread(target=self._pump, args=(conn, None), daemon=True).start()
                    continue
                upstream = socket.create_connection(self.upstream)
                self._sockets.append(upstream)
            threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket | None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if sink is not None:
                    sink.sendall(data)


@pytest.fixture
def proxied_api(stack: Stack) -> Iterator[tuple[client.ApiClient, Proxy]]:
    """A cluster-admin client that reaches the apiserver through a Proxy the test controls."""
    api = config.new_client_from_config(config_file=str(stack.kube.kubeconfig))
    parsed = urllib.parse.urlsplit(api.configuration.host)
    proxy = Proxy((parsed.hostname or "127.0.0.1", parsed.port or 443))
    api.configuration.host = f"https://127.0.0.1:{proxy.port}"
    yield api, proxy
    proxy.close()


@pytest.mark.parametrize("outage", ["refuse", "blackhole"])
def test_leader_cut_off_from_the_apiserver_steps_down_within_the_renew_deadline(
    outage: str,
    proxied_api: tuple[client.ApiClient, Proxy],
    make_elector: MakeElector,
    read_lease: Callable[[], dict[str, Any]],
    never_two_leaders: Callable[..., None],
) -> None:
    api, proxy = proxied_api
    changes = Changes()
    cut = make_elector("host-cut_1", api=api, on_change=changes)
    assert cut.wait_for_leadership(4 * SECONDS)
    standby_changes = Changes()
    standby = make_elector("host-ok_2", on_change=standby_changes)
    never_two_leaders(cut, standby)
    timings = cut.timings
    renew_deadline = timings.renew_deadline.total_seconds()

    proxy.set(outage)
    cut_at = time.monotonic()
    # is_leader() is computed from the clock: once the renew deadline has passed since the cut
    # (the last renewal was no later), it must say False, however late this thread gets to ask.
    wait_until(lambda: time.monotonic() >= cut_at + renew_deadline, renew_deadline + 1, what="the renew deadline")
    assert not cut.is_leader()
    wait_until(lambda: changes.first(False) is not None, 2 * SECONDS, what="on_change(False)")
    told = (changes.first(False) or 0) - cut_at
    wait_until(standby.is_leader, 3 * SECONDS, what="the standby takes over the lapsed lease")
    # is_leader() flips before the elector thread gets to call on_change(True): wait for the call.
    wait_until(lambda: standby_changes.first(True) is not None, SECONDS, what="the standby's on_change(True)")
    took = (standby_changes.first(True) or 0) - cut_at
    print(f"{outage}: on_change(False) after {told:.3f}s, standby leads after {took:.3f}s")
    # Every call ends by the renew deadline, so the step-down is announced before the lease can
    # lapse for the standby (the 2/3 -> 1 lease margin absorbs scheduling delays on a busy machine).
    assert told < took
    assert told < SECONDS
    assert read_lease()["holder"] == "host-ok_2"

    # Reconnected, the old leader's thread is alive and stays a standby: the lease is taken.
    proxy.set("forward")
    assert not cut.wait_for_leadership(2 * SECONDS)
    standby.stop(release=True)
    assert cut.wait_for_leadership(2 * SECONDS), "the elector thread survived the outage"
    # is_leader() flips before the elector thread calls on_change(True): wait for the call.
    wait_until(lambda: len(changes.values()) == 3, SECONDS, what="the old leader's on_change(True)")
    assert changes.values() == [True, False, True]


def test_a_failing_on_change_does_not_stop_renewals(
    make_elector: MakeElector, read_lease: Callable[[], dict[str, Any]]
) -> None:
    def explode(leading: bool) -> None:
        raise RuntimeError("callback bug")

    elector = make_elector("host-a_1", on_change=explode)
    assert elector.wait_for_leadership(4 * SECONDS)
    renewed = read_lease()["renew"]
    wait_until(lambda: read_lease()["renew"] > renewed, 2 * SECONDS, what="a renewal after the callback failed")
    assert elector.is_leader()


def test_the_verbs_in_the_docstring_are_enough(
    stack: Stack, kube_api: client.ApiClient, namespace: str, lease_name: str, make_elector: MakeElector
) -> None:
    """Run two electors as a ServiceAccount bound to a Role of get/create/patch on leases only."""
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="e")))
    rule = client.V1PolicyRule(
        api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["get", "create", "patch"]
    )
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=client.V1ObjectMeta(name="elector"), rules=[rule]))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="elector"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="elector"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="e", namespace=namespace)],
        ),
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    status = core.create_namespaced_service_account_token("e", namespace, request).status
    assert status is not None
    token = str(status.token)
    assert stack.kube.pki is not None
    ca_cert = str(stack.kube.pki.ca_cert)

    def as_service_account() -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = stack.kube.url
        configuration.ssl_ca_cert = ca_cert
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    a = make_elector("sa-a_1", api=as_service_account())
    b = make_elector("sa-b_2", api=as_service_account())
    leader = one_leader(a, b)
    standby = b if leader is a else a
    leader.stop(release=True)
    wait_until(standby.is_leader, SECONDS, what="handover as the ServiceAccount")
