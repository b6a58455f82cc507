"""The image's lock files agree with pyproject.toml, and the Dockerfile installs from them by hash.

requirements/image.txt (syncd's dependencies) and requirements/build.txt (its build backend) are
written by `make lock` (pip-compile --generate-hashes). A dependency added to, dropped from or
re-ranged in pyproject.toml without `make lock` fails here, before an image build does.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
IMAGE_LOCK = REPO_ROOT / "requirements" / "image.txt"
BUILD_LOCK = REPO_ROOT / "requirements" / "build.txt"
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
# What pip-compile writes for a requirement that comes from pyproject.toml itself.
FROM_PROJECT = re.compile(r"^syncd \(pyproject\.toml(::build-system\.requires)?\)$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)\s*\\$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}( \\)?$")


@dataclass
class Pin:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def _parse(lock: Path) -> dict[str, Pin]:
    """name -> Pin, from pip-compile's format; any other kind of line fails the test."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for number, raw in enumerate(lock.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line == "#":
            continue
        if match := PIN.match(line):
            name = canonicalize_name(match.group(1))
            assert name not in pins, f"{lock.name}:{number}: {name} pinned twice"
            current = pins[name] = Pin(match.group(2))
            in_via = False
        elif line.startswith("--hash="):
            assert current is not None, f"{lock.name}:{number}: a hash before any pin"
            assert HASH.match(line), f"{lock.name}:{number}: not a sha256 hash: {line}"
            current.hashes.append(line.split(":", 1)[1].split()[0])
        elif line.startswith("# via"):
            assert current is not None, f"{lock.name}:{number}: 'via' before any pin"
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif in_via and raw.startswith("    #   "):
            assert current is not None
            current.via.append(line.removeprefix("#").strip())
        elif line.startswith("#"):
            in_via = False  # pip-compile's header and its note on unsafe packages
        else:
            pytest.fail(f"{lock.name}:{number}: neither a pin, a hash nor a comment: {raw!r}")
    return pins


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        (IMAGE_LOCK, PYPROJECT["project"]["dependencies"]),
        (BUILD_LOCK, PYPROJECT["build-system"]["requires"]),
    ],
    ids=["image", "build"],
)
def test_lock_pins_every_requirement_of_pyproject_with_hashes(lock: Path, requirements: list[str]) -> None:
    pins = _parse(lock)
    assert pins, f"{lock} pins nothing"
    for name, pin in pins.items():
        assert pin.hashes, f"{lock.name}: {name}=={pin.version} has no --hash: pip --require-hashes refuses it"
        Version(pin.version)  # a plain version, not a range or a URL
        for parent in pin.via:
            assert FROM_PROJECT.match(parent) or canonicalize_name(parent) in pins, (
                f"{lock.name}: {name} is there for {parent!r}, which the lock does not pin"
            )
    wanted = {canonicalize_name(Requirement(text).name): Requirement(text) for text in requirements}
    for name, requirement in wanted.items():
        assert name in pins, f"{lock.name} lacks {requirement} from pyproject.toml: run `make lock`"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"{lock.name} pins {name}=={pins[name].version}, outside pyproject.toml's {requirement}: run `make lock`"
        )
    # The other way round: what the lock takes from pyproject.toml is still there.
    top = {name for name, pin in pins.items() if any(FROM_PROJECT.match(parent) for parent in pin.via)}
    assert top == set(wanted), f"{lock.name} is stale against pyproject.toml: run `make lock`"


def test_the_image_lock_leaves_the_build_backend_out() -> None:
    """The runtime venv gets no setuptools or wheel from the lock (the Dockerfile removes pip's)."""
    assert not {"setuptools", "wheel", "pip"} & set(_parse(IMAGE_LOCK))


def test_dockerfile_installs_from_the_locks_by_hash() -> None:
    assert "COPY requirements ./requirements" in DOCKERFILE
    assert "--require-hashes --only-binary :all: -r requirements/build.txt" in DOCKERFILE
    assert "--require-hashes --only-binary :all: --dest /wheels -r requirements/image.txt" in DOCKERFILE
    assert "--require-hashes --only-binary :all: \\\n       -r /tmp/wheels/requirements.txt" in DOCKERFILE
    # syncd's own wheel is the one thing installed without a hash, and without dependencies.
    assert "pip install --no-index --no-deps /tmp/wheels/syncd-*.whl" in DOCKERFILE
    assert "!requirements/" in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()


def test_dockerfile_default_base_is_pinned_by_digest() -> None:
    match = re.search(r"^ARG BASE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert match is not None
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", match.group(1)), match.group(1)
    # and a BASE passed without a digest stops the build
    assert "*@sha256:*) ;;" in DOCKERFILE
