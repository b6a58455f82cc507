"""A real image client against the real registry, authenticated by a .dockerconfigjson.

The image is an OCI layout the test writes (harness.oci: nothing fetched); Debian skopeo
pushes it to the harness registry (distribution 2.8, htpasswd, plain HTTP on loopback: hence
`--dest-tls-verify=false` / `--src-tls-verify=false`, which let skopeo fall back to http) and pulls
it back, reading its credentials from the same bytes a kubernetes.io/dockerconfigjson Secret holds.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness import Stack
from harness.kubelet import offered
from harness.oci import OciImage, Skopeo, dockerconfigjson, make_layout, read_layout

# The first lookup may build kubelet-keyring (about 3 minutes with a cold Go build cache):
# `make kubelet-keyring` (scripts/kubelet-keyring.sh) ahead of pytest avoids that.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def oci_image(tmp_path: Path) -> OciImage:
    """A one-layer image in an OCI layout under tmp_path, tag v1, with a file unique to the test."""
    return make_layout(tmp_path / "image", "v1", {"hello.txt": f"pull test {uuid.uuid4()}\n".encode()})


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo")


@pytest.fixture
def repository(stack: Stack) -> str:
    """A repository of this test's own in the harness registry: `HOST:PORT/syncd/pull-<id>`."""
    return f"{stack.registry.host}/syncd/pull-{uuid.uuid4().hex[:8]}"


def _authfile(tmp_path: Path, name: str, stack: Stack, password: str) -> Path:
    path = tmp_path / f"{name}.dockerconfigjson"
    path.write_bytes(dockerconfigjson(stack.registry.host, stack.registry.username, password))
    return path


def _push(skopeo: Skopeo, authfile: Path, image: OciImage, repository: str) -> None:
    pushed = skopeo.run(
        "copy",
        "--authfile",
        str(authfile),
        "--dest-tls-verify=false",
        image.reference,
        f"docker://{repository}:{image.tag}",
    )
    assert pushed.returncode == 0, pushed.stderr


def test_push_and_pull_with_a_dockerconfigjson(
    stack: Stack, skopeo: Skopeo, oci_image: OciImage, repository: str, tmp_path: Path
) -> None:
    """The right login in the auth file pushes the image, and pulls back the same manifest and files."""
    authfile = _authfile(tmp_path, "right", stack, stack.registry.password)
    _push(skopeo, authfile, oci_image, repository)

    inspected = skopeo.run("inspect", "--authfile", str(authfile), "--tls-verify=false", f"docker://{repository}:v1")
    assert inspected.returncode == 0, inspected.stderr
    assert f'"Digest": "{oci_image.digest}"' in inspected.stdout

    out = tmp_path / "pulled"
    pulled = skopeo.run(
        "copy", "--authfile", str(authfile), "--src-tls-verify=false", f"docker://{repository}:v1", f"oci:{out}:v1"
    )
    assert pulled.returncode == 0, pulled.stderr
    back = read_layout(out, "v1")
    assert (back.digest, back.files) == (oci_image.digest, oci_image.files)


def test_wrong_password_is_refused(
    stack: Stack, skopeo: Skopeo, oci_image: OciImage, repository: str, tmp_path: Path
) -> None:
    """With a wrong password the pull of an image that is there, and a push, fail as unauthorized."""
    _push(skopeo, _authfile(tmp_path, "right", stack, stack.registry.password), oci_image, repository)
    wrong = _authfile(tmp_path, "wrong", stack, "not-the-registry-password-4d2b")

    pulled = skopeo.run(
        "copy",
        "--authfile",
        str(wrong),
        "--src-tls-verify=false",
        f"docker://{repository}:v1",
        f"oci:{tmp_path / 'refused'}:v1",
    )
    assert pulled.returncode != 0
    assert "unauthorized: authentication required" in pulled.stderr
    assert not (tmp_path / "refused" / "index.json").exists()

    pushed = skopeo.run(
        "copy", "--authfile", str(wrong), "--dest-tls-verify=false", oci_image.reference, f"docker://{repository}:v2"
    )
    assert pushed.returncode != 0
    assert "unauthorized: authentication required" in pushed.stderr


def test_the_login_the_kubelet_offers_pulls(
    stack: Stack, skopeo: Skopeo, oci_image: OciImage, repository: str, tmp_path: Path
) -> None:
    """End to end: the kubelet's lookup picks, from a Pod's pull Secrets, the login that pulls.

    The Pod lists a Secret with a wrong password for the registry's host, then a right one for the
    repository path: the kubelet offers the more specific key first (keyring.go: the reverse-sorted
    index), skopeo pulls with it; the host-wide login it offers second is refused.
    """
    _push(skopeo, _authfile(tmp_path, "right", stack, stack.registry.password), oci_image, repository)
    host, user = stack.registry.host, stack.registry.username
    secrets = [
        ("host-wide", dockerconfigjson(host, user, "stale-password-91f0")),
        ("this-repo", dockerconfigjson(repository, user, stack.registry.password)),
    ]
    (offer,) = offered(secrets, [f"{repository}:v1"])
    assert [(login.secret, login.server) for login in offer.logins] == [("this-repo", repository), ("host-wide", host)]

    results = []
    for index, login in enumerate(offer.logins):
        results.append(
            skopeo.run(
                "copy",
                "--src-creds",
                f"{login.username}:{login.password}",
                "--src-tls-verify=false",
                f"docker://{repository}:v1",
                f"oci:{tmp_path / f'pulled-{index}'}:v1",
            )
        )
    assert results[0].returncode == 0, results[0].stderr
    assert read_layout(tmp_path / "pulled-0", "v1").files == oci_image.files
    assert results[1].returncode != 0
    assert "unauthorized" in results[1].stderr
