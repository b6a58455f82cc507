"""`syncd run` exit codes for a config that is only found wrong when it is used."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from syncd.cli.commands import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_tls_pair_that_does_not_load_is_a_config_error_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The files under server.tls are read when the server starts: exit 2 naming the key, no traceback."""
    kubeconfig = tmp_path / "kubeconfig"
    cluster = {"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    tls = {"cert_file": str(tmp_path / "missing.crt"), "key_file": str(tmp_path / "missing.key")}
    config = tmp_path / "syncd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "credentials": [{"name": "f", "docker_config": str(tmp_path / "d.json"), "registries": ["r.example"]}],
                "secrets": [{"name": "s", "credentials": ["f"], "namespaces": {"names": ["a"]}}],
                "server": {"address": f"127.0.0.1:{_free_port()}", "tls": tls},
            }
        )
    )
    code = main(["run", "--config", str(config), "--kubeconfig", str(kubeconfig)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "server.tls" in err
    assert "Traceback" not in err
