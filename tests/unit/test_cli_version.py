from __future__ import annotations

import subprocess
import sys

import pytest

from syncd import __version__
from syncd.cli.commands import main


def test_version_command_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"syncd {__version__}"
    assert __version__ != "0+unknown"


def test_python_dash_m_syncd_is_the_same_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "syncd", "version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"syncd {__version__}"


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
