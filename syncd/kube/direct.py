"""The hot writes (Secret create and update, ServiceAccount patch) on keep-alive `http.client`
connections instead of urllib3's pool.

Measured (issue 25, 2,000 namespaces, rotation in-process, three interleaved A/B pairs on a
loaded 2-core machine): syncd's CPU 4.39 / 3.10 / 3.84 s through urllib3 against 3.08 / 2.09 /
2.78 s this way, wall time 23.4 / 14.7 / 11.6 s against 16.4 / 9.3 / 10.5 s. py-spy put a
quarter of the write threads' busy samples in urllib3 taking a pooled connection
(`is_connection_dropped`: a poll() per request, which drops and retakes the GIL among 16
writers), and more in its request plumbing.

Only the sending changes: the request (URL, headers, bearer token with its refresh) is still
built by the ApiClient (`param_serialize`), the write fence is asked before every attempt, a
non-2xx answer raises the same ApiException (status, reason, headers for Retry-After). A
configuration this does not reproduce (a proxy, an overridden TLS server name or hostname check,
socket options) keeps urllib3 (`for_client` returns None).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.parse
import weakref
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

# A kept-alive connection idle longer than this is closed, not reused: servers and load balancers
# close idle connections (kube-apiserver after 90 s: reused after 125 s idle, one raised
# SSLEOFError). urllib3 polls each connection before reuse instead; that poll was a quarter of its
# cost here. One that fails anyway before an answer is replaced once (`send`).
IDLE_SECONDS = 15.0
# A request whose connection the apiserver accepted but which it never answers (a hung apiserver,
# a half-open connection through a load balancer) fails once this long passes without a byte,
# instead of holding its thread, and the spec's sync with it, for ever: jobs never overlap, so
# one hung request would stop that spec's syncs for good. Per read, not in total: a large list
# streams. Watches set their own. syncd.kube.client applies it to every other request.
READ_TIMEOUT = 30.0


class FenceClosed(Exception):
    """A write was refused before it was sent: this replica no longer holds the leader lease."""


class DirectWrites:
    """Idle connections to one apiserver, each used by one writer at a time (LIFO: warm first)."""

    def __init__(self, configuration: client.Configuration, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.context = _context(configuration)
        self._idle: list[tuple[http.client.HTTPSConnection, float]] = []  # with when it was last used
        self._lock = threading.Lock()

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes, fence: Any = None) -> None:
        """One request; a non-2xx answer raises ApiException, a failed connection an OSError or
        http.client.HTTPException (as urllib3's would, for `call` to turn into a KubeError)."""
        target = urllib.parse.urlsplit(url)
        path = target.path + (f"?{target.query}" if target.query else "")
        for attempt in (1, 2):
            if fence is not None and not fence.allowed():
                raise FenceClosed
            connection, reused = self._take()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException):
                # No answer: on a kept-alive connection, most likely one the server had closed
                # (reset, TLS EOF, empty status line). Sent again once on a new connection; a
                # create that did arrive the first time then meets a 409, which `create` handles.
                connection.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            try:
                data = response.read()
            except BaseException:
                connection.close()
                raise
            self._give(connection, response)
            if not 200 <= response.status <= 299:
                error = ApiException(status=response.status, reason=response.reason)
                error.headers = dict(response.getheaders())
                error.body = data.decode("utf-8", errors="replace")
                raise error
            return
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the idle connections (those in use close when their writer is done with them)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _take(self) -> tuple[http.client.HTTPSConnection, bool]:
        """The most recently used idle connection, or a new one. The stack's top is its newest:
        if that one has been idle too long, so have all the others, and all are closed."""
        expired: list[tuple[http.client.HTTPSConnection, float]] = []
        with self._lock:
            if self._idle and time.monotonic() - self._idle[-1][1] > IDLE_SECONDS:
                expired, self._idle = self._idle, []
            found = self._idle.pop()[0] if self._idle else None
        for connection, _ in expired:
            connection.close()
        if found is not None:
            return found, True
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=READ_TIMEOUT)
        return connection, False

    def _give(self, connection: http.client.HTTPSConnection, response: http.client.HTTPResponse) -> None:
        if response.will_close:
            connection.close()
            return
        with self._lock:
            self._idle.append((connection, time.monotonic()))


def _context(configuration: client.Configuration) -> ssl.SSLContext:
    """TLS as the generated client's urllib3 pool sets it up from the same configuration."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _reproducible(configuration: client.Configuration) -> bool:
    return not (
        configuration.proxy
        or configuration.tls_server_name
        or configuration.assert_hostname is not None
        or configuration.socket_options is not None
        or getattr(configuration, "keep_alive", False)
    )


_CLIENTS: weakref.WeakKeyDictionary[client.ApiClient, DirectWrites | None] = weakref.WeakKeyDictionary()
_CLIENTS_LOCK = threading.Lock()


def for_client(api: client.ApiClient) -> DirectWrites | None:
    """The direct writer of this ApiClient's apiserver, made once; None where urllib3 stays."""
    with _CLIENTS_LOCK:
        if api not in _CLIENTS:
            writer = _CLIENTS[api] = _made(api.configuration)
            if writer is not None:  # its connections go with the ApiClient's
                weakref.finalize(api, writer.close)
        return _CLIENTS[api]


def _made(configuration: client.Configuration) -> DirectWrites | None:
    target = urllib.parse.urlsplit(configuration.host)
    if target.scheme != "https" or not target.hostname or target.path.strip("/") or not _reproducible(configuration):
        return None
    return DirectWrites(configuration, target.hostname, target.port or 443)
