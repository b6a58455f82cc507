"""Docker credential helpers (`docker-credential-<name> get`) as a credential source.

Helpers are third-party programs that may hang, spawn children (pass -> gpg), print megabytes or
print a secret where we expected an error, and see whatever environment they are given. So a helper
runs with an allow-listed environment (syncd.sources.helper_env: never $VAULT_TOKEN), in its own
session (its whole process group is killed when the call ends, so no child of it outlives the call),
its output is read with a hard cap instead of `communicate()`, and what it prints never reaches a
log line or an exception, except the first line of an error that it reported with a non-zero exit
status, which is how the protocol reports errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from syncd.config import HelperCredential
from syncd.config.fields import is_helper_name
from syncd.core.clock import utcnow
from syncd.core.errors import CredentialNotFound, InvalidCredential, SourceUnavailable
from syncd.core.safe_json import INVALID, loads_or_invalid
from syncd.core.values import FetchedCredential, RegistryCredential
from syncd.sources.base import expiry
from syncd.sources.helper_env import helper_environment

PROGRAM_PREFIX = "docker-credential-"
NOT_FOUND_MESSAGE = "credentials not found in native keychain"  # the protocol's one "not found" answer
TOKEN_USERNAME = "<token>"  # noqa: S105 - the protocol's marker for an identity token, not a password
MAX_OUTPUT = 1024 * 1024
MAX_ERROR_TEXT = 200
_CHUNK = 64 * 1024
_STDERR_KEPT = 4 * 1024


@dataclass(frozen=True)
class _Call:
    """One `get` of one helper: what every error message needs to name."""

    program: str
    server_url: str
    credential: str
    environment: dict[str, str] = field(repr=False)  # AWS keys and the like: never in a repr


class HelperSource:
    """A credential that a Docker credential helper holds for `credential.registry`."""

    kind = "helper"

    def fetch(self, credential: HelperCredential) -> FetchedCredential:
        # Taken before the call: a lifetime counted from here can only end early, never late.
        now = utcnow()
        username, secret = run_helper(
            credential.helper,
            credential.host,
            timeout=credential.helper_timeout,
            credential_name=credential.name,
            environment=credential.helper_env,
        )
        entry = RegistryCredential(registry=credential.host, username=username, password=secret)
        return FetchedCredential(
            name=credential.name, source=self.kind, entries=(entry,), expires_at=expiry(credential, now=now)
        )


def run_helper(
    helper: str,
    server_url: str,
    *,
    timeout: dt.timedelta,
    credential_name: str,
    environment: Sequence[str] = (),
) -> tuple[str, str]:
    """Run `docker-credential-<helper> get` for `server_url` and return (username, secret).

    The helper gets the allow-listed environment plus the variables named in `environment` (see
    syncd.sources.helper_env). An identity token comes back as username `<token>` and the token as
    secret: see `_parse`.
    """
    if not is_helper_name(helper):  # a name from a docker config.json never went through the config model
        raise InvalidCredential(credential_name, f"{helper!r} is not a credential helper name")
    call = _Call(PROGRAM_PREFIX + helper, server_url, credential_name, helper_environment(environment))
    process = _start(call)
    try:
        _send(process, server_url)
        stdout, stderr = _collect(process, call, deadline=time.monotonic() + timeout.total_seconds())
    finally:
        # Answered, failed or timed out: what the helper left running in its group goes with it.
        _kill(process)
        _close(process)
    return _parse(call, process.returncode, stdout, stderr)


def _start(call: _Call) -> subprocess.Popen[bytes]:
    path = shutil.which(call.program, path=call.environment.get("PATH"))
    if path is None:
        raise SourceUnavailable(call.credential, f"{call.program} is not on PATH (or is not executable)")
    try:
        # A new session makes the helper a process-group leader, so a timeout can kill its children too.
        return subprocess.Popen(
            [path, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=call.environment,
        )
    except OSError as exc:
        raise SourceUnavailable(call.credential, f"cannot run {call.program}: {exc.strerror or exc}") from exc


def _send(process: subprocess.Popen[bytes], server_url: str) -> None:
    """Write the server URL and close stdin: helpers read it up to end of file, as docker sends it."""
    if process.stdin is None:
        return
    # A helper that exits without reading stdin is judged by its exit status, not by this error.
    with contextlib.suppress(BrokenPipeError):
        process.stdin.write(server_url.encode())
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()


def _collect(process: subprocess.Popen[bytes], call: _Call, *, deadline: float) -> tuple[bytes, bytes]:
    """Read stdout (at most MAX_OUTPUT) and the start of stderr until both close, then reap the helper."""
    stdout, stderr = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        for stream, buffer in ((process.stdout, stdout), (process.stderr, stderr)):
            if stream is not None:
                selector.register(stream, selectors.EVENT_READ, buffer)
        while selector.get_map():
            for key, _ in selector.select(_remaining(deadline, call)):
                _read_into(selector, key, stdout_buffer=stdout)
            if len(stdout) > MAX_OUTPUT:
                raise InvalidCredential(call.credential, f"{call.program} output larger than 1 MiB")
    _wait_for_exit(process, call, deadline=deadline)
    return bytes(stdout), bytes(stderr[:_STDERR_KEPT])


def _wait_for_exit(process: subprocess.Popen[bytes], call: _Call, *, deadline: float) -> None:
    """Wait for the helper to exit without reaping it (`_kill` does): a zombie keeps its pid, so its
    process group id cannot be reused by an unrelated process before `_kill` signals the group."""
    delay = 0.001
    while True:
        try:
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:  # reaped already; Popen.wait copes with that
            return
        time.sleep(min(delay, _remaining(deadline, call)))
        delay = min(delay * 2, 0.05)


def _read_into(selector: selectors.BaseSelector, key: selectors.SelectorKey, *, stdout_buffer: bytearray) -> None:
    chunk = os.read(key.fd, _CHUNK)
    if not chunk:
        selector.unregister(key.fileobj)
        return
    buffer: bytearray = key.data
    # stderr is only drained past its first few KiB, so a chatty helper never blocks on a full pipe.
    if buffer is stdout_buffer or len(buffer) < _STDERR_KEPT:
        buffer.extend(chunk)


def _remaining(deadline: float, call: _Call) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        _timed_out(call)
    return remaining


def _timed_out(call: _Call) -> NoReturn:
    raise SourceUnavailable(call.credential, f"{call.program} did not answer in time for {call.server_url}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the helper's process group, then reap the helper. Children that stayed in its group die
    with it; one that started its own session (gpg-agent does, on purpose) is out of reach."""
    # Not reaped yet, so the group id cannot have been reused by an unrelated process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _close(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _parse(call: _Call, status: int, stdout: bytes, stderr: bytes) -> tuple[str, str]:
    if status != 0:
        raise _failure(call, status, stdout, stderr)
    answer = loads_or_invalid(stdout)
    if answer is INVALID:
        raise InvalidCredential(call.credential, f"{call.program} did not answer with JSON")
    username = answer.get("Username") if isinstance(answer, dict) else None
    secret = answer.get("Secret") if isinstance(answer, dict) else None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise InvalidCredential(call.credential, f"{call.program} answered without a string Username and Secret")
    if not username and not secret:
        # docker-credential-pass 0.6.4 (Debian) answers an unknown server this way, with exit status 0.
        raise _not_found(call)
    # Username `<token>` means the secret is an identity token (an OAuth refresh token). docker maps it
    # to `identitytoken`, which kubelet's dockerconfigjson has no field for; it is passed on as a
    # username/password pair, which works with registries that accept any username with a token.
    return username, secret


def _failure(call: _Call, status: int, stdout: bytes, stderr: bytes) -> Exception:
    text = stdout.decode(errors="replace").strip()
    if text == NOT_FOUND_MESSAGE:
        return _not_found(call)
    if status < 0:
        return SourceUnavailable(call.credential, f"{call.program} was killed by signal {-status}")
    # The protocol puts errors on stdout; some helpers use stderr. Only the first line, shortened.
    lines = (text or stderr.decode(errors="replace").strip()).splitlines()
    first = lines[0][:MAX_ERROR_TEXT] if lines else "no error message"
    if first.lstrip().startswith("{"):
        # JSON is never an error message in this protocol: it is the answer, with the secret in it,
        # printed by a helper that failed afterwards (a wrapper script's later step, say).
        first = "(its output is JSON, not an error message: not shown)"
    return SourceUnavailable(call.credential, f"{call.program} exited with status {status}: {first}")


def _not_found(call: _Call) -> CredentialNotFound:
    return CredentialNotFound(call.credential, f"{call.program} has no credentials for {call.server_url}")
