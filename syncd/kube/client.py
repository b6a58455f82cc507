"""Build the Kubernetes API client: in-cluster in a pod, else kubeconfig; pool sized for fan-out."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from syncd.core.errors import KubeError
from syncd.kube import direct
from syncd.kube.direct import FenceClosed

T = TypeVar("T")
IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
MAX_THROTTLE_RETRIES = 10  # as client-go: a 429 is retried up to 10 times before it counts as a failure
MAX_RETRY_AFTER_SECONDS = 30.0


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WriteFence:
    """Whether this process may write now; `allowed` is set by whoever knows (the daemon: the lease)."""

    def __init__(self) -> None:
        self.allowed: Callable[[], bool] = lambda: True


CONNECT_TIMEOUT = 10.0


class TimedApiClient(client.ApiClient):
    """An ApiClient whose every request has a timeout: the generated client sends without one
    unless told, and a request the apiserver never answers then waits for ever (syncd.kube.direct
    says why that stops a spec). A caller's own `_request_timeout` (the watches') stands."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None and len(args) < 5:
            kwargs["_request_timeout"] = (CONNECT_TIMEOUT, direct.READ_TIMEOUT)
        return super().call_api(method, url, *args, **kwargs)


class FencedApiClient(TimedApiClient):
    """An ApiClient that asks its fence before every write request it sends, each retry included.

    A leader checks the lease once per run, but a run's writes go on for seconds, and a write
    throttled (429) is sent again after the server's Retry-After: the soak saw a replica write
    after its lease had lapsed that way. Asking right before each attempt closes that gap to the
    instant between the check and the send.
    """

    def __init__(self, configuration: client.Configuration, fence: WriteFence) -> None:
        super().__init__(configuration)
        self.fence = fence

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in READ_METHODS and not self.fence.allowed():
            raise FenceClosed
        return super().call_api(method, url, *args, **kwargs)


def load_api_client(
    *, kubeconfig: str | None, context: str | None, pool_size: int, fence: WriteFence | None = None
) -> client.ApiClient:
    """In a pod (and without --kubeconfig): the ServiceAccount; otherwise $KUBECONFIG / ~/.kube/config.

    The urllib3 pool must be at least as large as the write pool, or concurrent writes queue
    for a connection and the fan-out buys nothing. With a `fence`, writes go out only while it allows.
    """
    configuration = client.Configuration()
    try:
        if kubeconfig is None and context is None and os.environ.get(IN_CLUSTER_ENV):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise KubeError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
    configuration.connection_pool_maxsize = pool_size
    return TimedApiClient(configuration) if fence is None else FencedApiClient(configuration, fence)


def status_of(exc: ApiException) -> int:
    return int(exc.status or 0)


def retry_after(exc: ApiException, attempt: int, jitter: Callable[[], float] = random.random) -> float:
    """The server's Retry-After when it sent one, else a short exponential backoff; plus up to as much again.

    The jitter matters: the writers throttled together all read the same `Retry-After: 1`, and
    without it they all come back together and are throttled together again, until some give up.
    """
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        seconds = 0.0
    wait = min(seconds or 0.2 * 2**attempt, MAX_RETRY_AFTER_SECONDS)
    return min(wait * (1 + jitter()), MAX_RETRY_AFTER_SECONDS)


def call(fn: Callable[[], T], *, what: str, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run one API call, honouring 429 / Retry-After; other failures become KubeError naming `what`."""
    for attempt in range(MAX_THROTTLE_RETRIES + 1):
        try:
            return fn()
        except ApiException as exc:
            if status_of(exc) == 429 and attempt < MAX_THROTTLE_RETRIES:
                sleep(retry_after(exc, attempt))
                continue
            # `from None`: the library's exception text carries the response body, and the apiserver
            # echoes invalid Secret data in it; a chained traceback would print it.
            raise KubeError(f"{what}: {describe(exc)}{_hint(exc)}", status=status_of(exc)) from None
        except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
            # http.client's own errors come from the direct writes (an empty or broken answer).
            raise KubeError(f"{what}: cannot reach the Kubernetes API ({type(exc).__name__})") from exc
        except FenceClosed:
            raise KubeError(f"{what}: not sent: this replica no longer holds the leader lease") from None
    raise AssertionError("unreachable")


_POLICY_DENIAL = re.compile(r"ValidatingAdmissionPolicy '([a-z0-9.-]{1,253})'")


def _hint(exc: ApiException) -> str:
    # Every `what` names the object (for Secrets: the resourceName RBAC must grant), so the fix is
    # the generated RBAC and policy, not a guess at which rule is missing.
    if status_of(exc) != 403:
        return ""
    # Only the policy's name is taken from the body: a policy's message may be built from the object.
    policy = _POLICY_DENIAL.search(str(exc.body or ""))
    if policy:
        return (
            f" (refused by ValidatingAdmissionPolicy {policy.group(1)!r}: apply the output of "
            "`syncd rbac --config FILE` for this config; `kubectl get validatingadmissionpolicy "
            f"{policy.group(1)} -o yaml` lists its rules)"
        )
    return " (forbidden by RBAC: apply the output of `syncd rbac --config FILE` for this config)"


def send(fn: Callable[[], object], *, what: str) -> None:
    """A write whose answer is not needed, made with `_preload_content=False`.

    Its body is still read: urllib3 hands a connection back to the pool only once the response
    is read, so an unread answer keeps it, and the next call opens (and TLS-handshakes) a new
    one. Before this, every write of a rollout paid a handshake: half of syncd's CPU.
    """
    response = cast(Any, call(fn, what=what))  # a urllib3.HTTPResponse
    response.drain_conn()
    response.release_conn()


JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


def send_json(
    api: client.ApiClient,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    what: str,
    content_type: str = JSON,
    **path_params: str,
) -> None:
    """`send` for the hot writes (Secret create and update, ServiceAccount patch), without the
    generated method, which validates the body into its pydantic model and serialises it back on
    every call. Measured (issue 14, 400 sequential calls, one thread, loaded 2-core machine):
    Secret create 1.13 -> 0.92 and 0.65 -> 0.49 ms of CPU per call, merge patch 1.05 -> 0.72 and
    0.65 -> 0.56 ms; the rest is urllib3, http.client and TLS.

    The request is built by the same ApiClient as the generated methods build it
    (`param_serialize`: same auth, bearer token refresh included) and sent on syncd/kube/direct.py's
    keep-alive connections (issue 25: a third less CPU per write than urllib3's pool) where they
    reproduce the configuration, else by `call_api` (TLS, pool); either way the write fence is
    asked before every attempt and a non-2xx answer raises an ApiException.
    """

    writer = direct.for_client(api)

    def request() -> None:
        method_, url, headers, payload, form = api.param_serialize(
            method=method,
            resource_path=path,
            path_params=path_params,
            query_params=[],
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        if writer is not None:  # syncd/kube/direct.py: the same request on a lighter connection
            writer.send(method_, url, headers, json.dumps(payload).encode(), getattr(api, "fence", None))
            return
        response = api.call_api(method_, url, headers, payload, form)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        response.response.drain_conn()  # see `send`
        response.response.release_conn()

    call(request, what=what)


def read_or_none(fn: Callable[[], object], *, what: str) -> dict[str, Any] | None:
    """A GET made with `_preload_content=False`, parsed; None when the object does not exist."""
    try:
        return json_body(call(fn, what=what))
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def json_body(response: object) -> dict[str, Any]:
    """The parsed body of a call made with `_preload_content=False`."""
    return dict(json.loads(cast(Any, response).data))


def describe(exc: ApiException) -> str:
    """Status and reason only: response bodies of Secret calls can carry Secret data."""
    if not exc.status:  # no HTTP answer at all: TLS or connection trouble, reported in the reason
        return f"cannot reach the Kubernetes API ({' '.join(str(exc.reason or 'no reason').split())[:200]})"
    return f"HTTP {exc.status} {exc.reason or ''}".strip()
