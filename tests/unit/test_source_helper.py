"""HelperSource and run_helper against small real helper programs (shell scripts put on PATH)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.wait import wait_until
from syncd.config import DockerConfigCredential, HelperCredential, parse_config
from syncd.core.errors import ConfigError, CredentialNotFound, InvalidCredential, SourceError, SourceUnavailable
from syncd.sources.docker_config import DockerConfigSource
from syncd.sources.helper import HelperSource, run_helper
from syncd.sources.helper_env import helper_environment, passed_by_default

SECRET = "s3cr3t-Vb7q"
ANSWER = f'{{"ServerURL":"r.example","Username":"robot","Secret":"{SECRET}"}}'
InstallHelper = Callable[[str, str], Path]


def write_helper(bin_dir: Path, name: str, body: str, *, executable: bool = True) -> Path:
    """Write `docker-credential-<name>`: a shell script that keeps its stdin and argv beside itself."""
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(f'#!/bin/sh\ncat > "$0.stdin"\necho "$@" > "$0.argv"\n{body}\n')
    path.chmod(0o755 if executable else 0o644)
    return path


@pytest.fixture
def install_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InstallHelper:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return lambda name, body: write_helper(bin_dir, name, body)


def _credential(**overrides: object) -> HelperCredential:
    fields: dict[str, object] = {"name": "ci-robot", "registry": "r.example", "helper": "fake", "helper_timeout": "5s"}
    return HelperCredential.model_validate(fields | overrides)


def _run(helper: str = "fake", timeout: float = 5.0) -> tuple[str, str]:
    return run_helper(helper, "r.example", timeout=dt.timedelta(seconds=timeout), credential_name="ci-robot")


def _assert_safe(error: pytest.ExceptionInfo[SourceError]) -> None:
    """Names the credential; carries no secret, neither in the message nor in a chained exception."""
    assert "ci-robot" in str(error.value)
    assert SECRET not in str(error.value)
    assert SECRET not in repr(error.value.__cause__) + repr(error.value.__context__)


def test_fetch_returns_the_helpers_login(install_helper: InstallHelper) -> None:
    script = install_helper("fake", f"printf '%s' '{ANSWER}'")
    fetched = HelperSource().fetch(_credential())
    assert fetched.name == "ci-robot"
    assert fetched.source == "helper"
    assert [(e.registry, e.username, e.password) for e in fetched.entries] == [("r.example", "robot", SECRET)]
    assert fetched.expires_at is None
    assert SECRET not in repr(fetched)
    assert Path(f"{script}.stdin").read_text() == "r.example"  # the server URL, as docker sends it
    assert Path(f"{script}.argv").read_text().strip() == "get"


def test_fetch_counts_the_lifetime_from_before_the_call(install_helper: InstallHelper) -> None:
    install_helper("fake", f"printf '%s' '{ANSWER}'")
    before = dt.datetime.now(dt.UTC)
    fetched = HelperSource().fetch(_credential(lifetime="12h"))
    assert fetched.expires_at is not None
    assert before + dt.timedelta(hours=12) <= fetched.expires_at <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)


def test_identity_token_is_passed_on_as_a_username_password_pair(install_helper: InstallHelper) -> None:
    install_helper("fake", f"""printf '%s' '{{"ServerURL":"r.example","Username":"<token>","Secret":"{SECRET}"}}'""")
    assert _run() == ("<token>", SECRET)


def test_missing_helper_is_unavailable_and_names_the_program(install_helper: InstallHelper) -> None:
    with pytest.raises(SourceUnavailable, match=r"docker-credential-nope is not on PATH") as error:
        _run("nope")
    _assert_safe(error)


def test_helper_that_is_not_executable_is_unavailable(tmp_path: Path, install_helper: InstallHelper) -> None:
    install_helper("other", "true")  # puts tmp_path/bin on PATH
    write_helper(tmp_path / "bin", "fake", f"printf '%s' '{ANSWER}'", executable=False)
    assert not (tmp_path / "bin" / "docker-credential-fake").stat().st_mode & stat.S_IXUSR
    with pytest.raises(SourceUnavailable, match=r"docker-credential-fake is not on PATH"):
        _run()


def test_helper_name_cannot_be_a_path(install_helper: InstallHelper) -> None:
    with pytest.raises(InvalidCredential, match="not a credential helper name"):
        _run("../../bin/sh")


def test_not_found_message_with_exit_1_is_not_found(install_helper: InstallHelper) -> None:
    install_helper("fake", "echo 'credentials not found in native keychain'; exit 1")
    with pytest.raises(CredentialNotFound, match=r"docker-credential-fake has no credentials for r\.example") as error:
        _run()
    _assert_safe(error)


def test_empty_username_and_secret_with_exit_0_is_not_found(install_helper: InstallHelper) -> None:
    # What Debian's docker-credential-pass 0.6.4 answers for a server it does not hold.
    install_helper("fake", """printf '%s' '{"ServerURL":"r.example","Username":"","Secret":""}'""")
    with pytest.raises(CredentialNotFound):
        _run()


def test_other_failure_is_unavailable_with_status_and_first_line(install_helper: InstallHelper) -> None:
    install_helper("fake", "echo 'error getting credentials - err: exit status 2'; echo 'second line'; exit 3")
    with pytest.raises(SourceUnavailable) as error:
        _run()
    assert "exited with status 3: error getting credentials - err: exit status 2" in str(error.value)
    assert "second line" not in str(error.value)
    _assert_safe(error)


def test_failure_text_is_cut_to_200_characters(install_helper: InstallHelper) -> None:
    install_helper("fake", "printf 'x%.0s' $(seq 1 5000); exit 1")
    with pytest.raises(SourceUnavailable) as error:
        _run()
    assert "x" * 200 in str(error.value)
    assert "x" * 201 not in str(error.value)


def test_failure_text_comes_from_stderr_when_stdout_is_empty(install_helper: InstallHelper) -> None:
    install_helper("fake", "echo 'pass: store is locked' >&2; exit 1")
    with pytest.raises(SourceUnavailable, match="exited with status 1: pass: store is locked"):
        _run()


def test_helper_killed_by_a_signal_is_unavailable(install_helper: InstallHelper) -> None:
    install_helper("fake", "kill -9 $$")
    with pytest.raises(SourceUnavailable, match="killed by signal 9"):
        _run()


@pytest.mark.parametrize(
    "output",
    [
        f"not json {SECRET}",
        f'{{"Username":"robot","Secret":"{SECRET}"',
        f'["robot","{SECRET}"]',
        f'{{"Username":null,"Secret":"{SECRET}"}}',
        f'{{"Username":"robot","Secret":{{"value":"{SECRET}"}}}}',
        '{"Username":"robot"}',
    ],
)
def test_answer_that_is_not_a_login_is_invalid_and_never_quoted(install_helper: InstallHelper, output: str) -> None:
    install_helper("fake", f"printf '%s' '{output}'")
    with pytest.raises(InvalidCredential, match="docker-credential-fake") as error:
        _run()
    _assert_safe(error)
    assert error.value.__context__ is None  # the decode error, which keeps the output, is not attached


def test_answer_that_is_not_utf8_is_invalid(install_helper: InstallHelper) -> None:
    install_helper("fake", r"printf '\377\376{}'")
    with pytest.raises(InvalidCredential, match="did not answer with JSON") as error:
        _run()
    assert error.value.__context__ is None


def test_output_over_1_mib_is_invalid_without_reading_it_all(install_helper: InstallHelper) -> None:
    install_helper("fake", "head -c 5242880 /dev/zero | tr '\\0' a")
    with pytest.raises(InvalidCredential, match="output larger than 1 MiB") as error:
        _run()
    _assert_safe(error)


def test_output_of_nearly_1_mib_is_read_whole(install_helper: InstallHelper) -> None:
    padding = 1024 * 1024 - 100
    head = f"""printf '%s' '{{"Username":"robot","Secret":"{SECRET}","Pad":"'"""
    tail = """printf '%s' '"}'"""
    install_helper("fake", f"{head}; head -c {padding} /dev/zero | tr '\\0' a; {tail}")
    assert _run() == ("robot", SECRET)


def test_chatty_stderr_does_not_block_the_helper(install_helper: InstallHelper) -> None:
    install_helper("fake", f"head -c 5242880 /dev/zero >&2; printf '%s' '{ANSWER}'")
    assert _run() == ("robot", SECRET)


def test_hanging_helper_is_killed_with_its_children(tmp_path: Path, install_helper: InstallHelper) -> None:
    pid_file = tmp_path / "child.pid"
    install_helper("fake", f"sleep 60 & echo $! > {pid_file}; wait")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"docker-credential-fake did not answer in time") as error:
        _run(timeout=0.5)
    assert time.monotonic() - started < 5
    _assert_safe(error)
    _assert_dies(int(pid_file.read_text()))


def test_helper_that_exits_but_leaves_a_child_holding_stdout_times_out(install_helper: InstallHelper) -> None:
    install_helper("fake", f"printf '%s' '{ANSWER}'; sleep 60 &")
    with pytest.raises(SourceUnavailable, match="did not answer in time"):
        _run(timeout=0.5)


def test_fetch_uses_the_configured_timeout(install_helper: InstallHelper) -> None:
    install_helper("fake", "sleep 60")
    with pytest.raises(SourceUnavailable, match="did not answer in time"):
        HelperSource().fetch(_credential(helper_timeout="300ms"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it is dead for our purpose.
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def test_a_child_left_running_after_a_good_answer_is_killed(tmp_path: Path, install_helper: InstallHelper) -> None:
    pid_file = tmp_path / "child.pid"
    # Detached from the helper's pipes, so the helper's exit ends the call: the child would live on.
    install_helper("fake", f"sleep 60 >/dev/null 2>&1 </dev/null & echo $! > {pid_file}; printf '%s' '{ANSWER}'")
    assert _run() == ("robot", SECRET)
    _assert_dies(int(pid_file.read_text()))


def test_a_hanging_helpers_grandchild_is_killed_with_it(tmp_path: Path, install_helper: InstallHelper) -> None:
    pid_file = tmp_path / "grandchild.pid"
    install_helper("fake", f"sh -c 'sleep 60 >/dev/null 2>&1 & echo $! > {pid_file}' & sleep 60")
    with pytest.raises(SourceUnavailable, match="did not answer in time"):
        _run(timeout=1)
    _assert_dies(int(pid_file.read_text()))


def test_the_helper_gets_the_allow_list_and_the_variables_its_credential_names(
    tmp_path: Path, install_helper: InstallHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "VAULT_TOKEN": "hvs.vault-token",
        "BAO_TOKEN": "bao-token",
        "SYNCD_SECRET_X": "x",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "UNLISTED": "u",
        "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
        "HTTPS_PROXY": "http://proxy:3128",
        "LC_ALL": "C.UTF-8",
        "MY_HELPER_SETTING": "m",
    }.items():
        monkeypatch.setenv(name, value)
    env_file = tmp_path / "helper.env"
    install_helper("fake", f"env > {env_file}; printf '%s' '{ANSWER}'")
    HelperSource().fetch(_credential(helper_env=["MY_HELPER_SETTING"]))
    seen = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert not {"VAULT_TOKEN", "BAO_TOKEN", "SYNCD_SECRET_X", "KUBERNETES_SERVICE_HOST", "UNLISTED"} & seen.keys()
    assert {"PATH", "HOME", "AWS_ROLE_ARN", "HTTPS_PROXY", "LC_ALL"} <= seen.keys()
    assert seen["MY_HELPER_SETTING"] == "m"


def test_a_docker_config_credentials_helper_gets_its_helper_env_too(
    tmp_path: Path, install_helper: InstallHelper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.vault-token")
    monkeypatch.setenv("MY_HELPER_SETTING", "m")
    env_file = tmp_path / "helper.env"
    install_helper("fake", f"env > {env_file}; printf '%s' '{ANSWER}'")
    docker_config = tmp_path / "config.json"
    docker_config.write_text(json.dumps({"credHelpers": {"r.example": "fake"}}))
    fields = {"name": "ci", "docker_config": str(docker_config), "registries": ["r.example"]}
    DockerConfigSource().fetch(DockerConfigCredential.model_validate(fields | {"helper_env": ["MY_HELPER_SETTING"]}))
    seen = env_file.read_text()
    assert "MY_HELPER_SETTING=m" in seen
    assert "VAULT_TOKEN" not in seen


def test_syncds_own_variables_are_never_passed_even_when_named() -> None:
    environ = {"VAULT_TOKEN": "t", "vault_token": "t", "BAO_TOKEN": "t", "KUBECONFIG": "k", "PATH": "/bin"}
    assert helper_environment(environ.keys(), environ) == {"PATH": "/bin"}


def test_the_allow_list_covers_the_cloud_sdks() -> None:
    names = ["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL_ECR", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    names += ["GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "AZURE_FEDERATED_TOKEN_FILE", "DOCKER_CONFIG"]
    names += ["PASSWORD_STORE_DIR", "GNUPGHOME", "SSL_CERT_FILE", "no_proxy", "TZ", "TMPDIR"]
    assert [name for name in names if not passed_by_default(name)] == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("VAULT_TOKEN", "VAULT_TOKEN is syncd's Vault login"),
        ("VAULT_ADDR", "'VAULT_ADDR' is syncd's own"),
        ("SYNCD_CONFIG", "'SYNCD_CONFIG' is syncd's own"),
        ("NOT A NAME", "is not an environment variable name"),
    ],
)
def test_the_config_refuses_syncds_own_variables_in_helper_env(name: str, message: str) -> None:
    raw = {"name": "ci", "registry": "r.example", "helper": "fake", "helper_env": ["AWS_PROFILE", name]}
    with pytest.raises(ConfigError) as error:
        parse_config(
            {"credentials": [raw], "secrets": [{"name": "pull", "credentials": ["ci"], "namespaces": {"names": ["x"]}}]}
        )
    assert [(p.path, message in p.message) for p in error.value.problems] == [("credentials[0].helper_env[1]", True)]


def _assert_dies(pid: int) -> None:
    wait_until(lambda: not _alive(pid), 5, f"the helper's child {pid} to be killed with the helper", interval=0.05)
