"""kubelet-keyring is the kubelet's credential lookup: cases from the kubelet's own tests.

The tool (scripts/kubelet-keyring/main.go) runs k8s.io/kubernetes v1.34.4's
pkg/credentialprovider/secrets.MakeDockerKeyring and the keyring's Lookup; these cases pin what it
answers, so that a change of Kubernetes version or of the tool shows up here, and so that syncd's
Python resolver has a reference to be compared against. Each case names the kubelet test it mirrors
(`mirrors`): pkg/credentialprovider/keyring_test.go (TestURLsMatch, TestDockerKeyringForGlob,
TestKeyringMiss, TestKeyringMissWithDockerHubCredentials, TestKeyringHitWith*DockerHub,
TestIsDefaultRegistryMatch, TestDockerKeyringLookup, TestIssue3797) and
pkg/credentialprovider/secrets/secrets_test.go (Test_MakeDockerKeyring), or "beyond" for cases
the kubelet's tests do not cover, derived from the code they test.

Images are looked up as a Pod's are (pkg/kubelet/images/image_manager.go: EnsureImageExists
qualifies them first: `nginx:1` -> `docker.io/library/nginx`); `raw` cases look the string up as
given, as the kubelet's keyring unit tests call Lookup.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import pytest

from harness.kubelet import Login, Offer, lookup, offered

# The first lookup may build kubelet-keyring (about 3 minutes with a cold Go build cache):
# `make kubelet-keyring` (scripts/kubelet-keyring.sh) ahead of pytest avoids that.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HUB_V1 = "https://index.docker.io/v1/"


def dockerconfig(entries: dict[str, str]) -> bytes:
    """A .dockerconfigjson as `kubectl create secret docker-registry` renders it; user U has password U-pw."""
    auths = {
        server: {
            "username": user,
            "password": f"{user}-pw",
            "auth": base64.b64encode(f"{user}:{user}-pw".encode()).decode(),
        }
        for server, user in entries.items()
    }
    return json.dumps({"auths": auths}).encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Case:
    id: str
    mirrors: str
    secrets: list[tuple[str, bytes]]
    image: str
    # (secret, server, username); the password is always `<username>-pw`
    want: list[tuple[str, str, str]] = field(default_factory=list)
    raw: bool = False


def one(entries: dict[str, str]) -> list[tuple[str, bytes]]:
    return [("a", dockerconfig(entries))]


CASES = [
    # Globs: per DNS label (filepath.Match on each), same number of labels, ports equal, path a prefix.
    Case("glob-first-label", "TestURLsMatch", one({"*.kubernetes.io": "ada"}), "prefix.kubernetes.io/app",
         [("a", "*.kubernetes.io", "ada")]),
    Case("glob-middle-label", "TestURLsMatch", one({"prefix.*.io": "ada"}), "prefix.kubernetes.io/app",
         [("a", "prefix.*.io", "ada")]),
    Case("glob-last-label", "TestURLsMatch", one({"prefix.kubernetes.*": "ada"}), "prefix.kubernetes.io/app",
         [("a", "prefix.kubernetes.*", "ada")]),
    Case("glob-inside-label", "TestURLsMatch", one({"*-good.kubernetes.io": "ada"}), "prefix-good.kubernetes.io/app",
         [("a", "*-good.kubernetes.io", "ada")]),
    Case("glob-with-path", "TestURLsMatch", one({"*.kubernetes.io/blah": "ada"}), "prefix.kubernetes.io/blah/app",
         [("a", "*.kubernetes.io/blah", "ada")]),
    Case("glob-path-prefix", "TestURLsMatch", one({"prefix.*.io/foo": "ada"}), "prefix.kubernetes.io/foo/bar",
         [("a", "prefix.*.io/foo", "ada")]),
    Case("glob-port-path", "TestURLsMatch", one({"*.kubernetes.io:1111/blah": "ada"}),
         "prefix.kubernetes.io:1111/blah/app", [("a", "*.kubernetes.io:1111/blah", "ada")]),
    Case("glob-needs-a-label", "TestURLsMatch", one({"*.kubernetes.io": "ada"}), "kubernetes.io/app"),
    Case("glob-two-labels-for-one", "TestURLsMatch", one({"*.*.kubernetes.io": "ada"}), "prefix.kubernetes.io/app"),
    Case("glob-star-does-not-cross-dots", "TestURLsMatch", one({"*kubernetes.io": "ada"}), "a.kubernetes.io/app"),
    Case("glob-star-matches-empty", "TestURLsMatch", one({"*kubernetes.io": "ada"}), "kubernetes.io/app",
         [("a", "*kubernetes.io", "ada")]),
    Case("glob-three-labels", "TestURLsMatch", one({"*.*.*.kubernetes.io": "ada"}), "a.b.c.kubernetes.io/app",
         [("a", "*.*.*.kubernetes.io", "ada")]),
    Case("glob-label-mismatch", "TestURLsMatch", one({"k*.io": "ada"}), "quay.io/app"),
    Case("host-tld-mismatch", "TestURLsMatch", one({"kubernetes.io": "ada"}), "kubernetes.com/app"),
    Case("port-mismatch", "TestURLsMatch", one({"*.kubernetes.io:1234/blah": "ada"}),
         "prefix.kubernetes.io:1111/blah/app"),
    Case("port-on-image-only", "TestURLsMatch", one({"prefix.*.io/foo": "ada"}), "prefix.kubernetes.io:1111/foo/bar"),
    Case("port-on-key-only", "beyond (URLsMatch: ports must be equal)", one({"quay.io:443": "ada"}), "quay.io/app"),
    Case("glob-https-v1-stripped", "TestDockerKeyringForGlob", one({"https://*.docker.io/v1/": "foo"}),
         "prefix.docker.io/app", [("a", "*.docker.io", "foo")]),
    Case("glob-https-v2-stripped", "TestDockerKeyringForGlob", one({"https://*.docker.io/v2/": "foo"}),
         "prefix.docker.io/app", [("a", "*.docker.io", "foo")]),
    Case("glob-host-port", "TestDockerKeyringForGlob", one({"*.docker.io:1111": "foo"}), "prefix.docker.io:1111/path",
         [("a", "*.docker.io:1111", "foo")]),
    Case("host-port", "TestDockerKeyringForGlob", one({"prefix.docker.io:1111": "foo"}), "prefix.docker.io:1111/path",
         [("a", "prefix.docker.io:1111", "foo")]),
    Case("glob-path-with-colon-raw", "TestDockerKeyringForGlob", one({"https://*.docker.io/path:1111": "foo"}),
         "prefix.docker.io/path:1111/foo/bar", [("a", "*.docker.io/path:1111", "foo")], raw=True),
    Case("miss-other-host", "TestKeyringMiss", one({"https://hello.kubernetes.io": "foo"}), "world.mesos.org/foo/bar"),
    Case("miss-glob-tld", "TestKeyringMiss", one({"https://*.docker.com": "foo"}), "prefix.docker.io/foo/bar"),
    Case("miss-glob-first-label", "TestKeyringMiss", one({"https://suffix.*.io": "foo"}), "prefix.docker.io/foo/bar"),
    Case("miss-partial-glob", "TestKeyringMiss", one({"https://prefix.docker.c*": "foo"}), "prefix.docker.io/foo/bar"),
    Case("miss-path-with-colon-raw", "TestKeyringMiss", one({"https://prefix.*.io/path:1111": "foo"}),
         "prefix.docker.io/path/subpath:1111/foo/bar", raw=True),
    # Docker Hub: only the bare host key index.docker.io is the fallback for Hub images; docker.io matches as a host.
    Case("hub-v1-unqualified", "TestKeyringHitWithUnqualifiedDockerHub", one({HUB_V1: "foo"}),
         "google/docker-registry", [("a", "index.docker.io", "foo")]),
    Case("hub-v1-library", "TestKeyringHitWithUnqualifiedLibraryDockerHub", one({HUB_V1: "foo"}), "jenkins",
         [("a", "index.docker.io", "foo")]),
    Case("hub-v1-qualified", "TestKeyringHitWithQualifiedDockerHub", one({HUB_V1: "foo"}),
         "index.docker.io/google/docker-registry", [("a", "index.docker.io", "foo")]),
    Case("hub-v1-qualified-raw", "TestKeyringHitWithQualifiedDockerHub", one({HUB_V1: "foo"}),
         "index.docker.io/google/docker-registry", [("a", "index.docker.io", "foo")], raw=True),
    Case("hub-v1-docker.io-image", "TestIsDefaultRegistryMatch", one({HUB_V1: "foo"}), "docker.io/foo/bar",
         [("a", "index.docker.io", "foo")]),
    Case("hub-v1-other-registry", "TestKeyringMissWithDockerHubCredentials", one({HUB_V1: "foo"}),
         "world.mesos.org/foo/bar"),
    Case("hub-v1-lookalike-host", "TestIsDefaultRegistryMatch", one({HUB_V1: "foo"}), "myhostdocker.io/foo/bar"),
    Case("hub-v1-host-with-port", "TestIsDefaultRegistryMatch", one({HUB_V1: "foo"}), "registry:5000/foo/bar"),
    Case("hub-v2-key", "beyond (keyring.go Add strips /v2/ too)", one({"https://index.docker.io/v2/": "foo"}), "nginx",
         [("a", "index.docker.io", "foo")]),
    Case("hub-index-key", "beyond (keyring.go Lookup fallback)", one({"index.docker.io": "foo"}), "nginx",
         [("a", "index.docker.io", "foo")]),
    Case("hub-docker.io-key", "beyond (URLsMatch on the qualified name)", one({"docker.io": "dora"}), "nginx:1.27",
         [("a", "docker.io", "dora")]),
    Case("hub-docker.io-key-raw", "TestIsDefaultRegistryMatch (fallback reads index.docker.io only)",
         one({"docker.io": "dora"}), "nginx", raw=True),
    Case("hub-registry-1-key", "beyond", one({"registry-1.docker.io": "foo"}), "nginx"),
    Case("hub-index-key-with-path", "beyond (fallback reads the bare host key only)",
         one({"index.docker.io/library": "foo"}), "nginx"),
    Case("hub-docker.io-hides-index", "beyond (fallback only when nothing matched)",
         [("a", dockerconfig({"docker.io": "dora"})), ("b", dockerconfig({HUB_V1: "ivan"}))], "nginx",
         [("a", "docker.io", "dora")]),
    Case("hub-docker.io-hides-index-listed-second", "beyond (fallback only when nothing matched)",
         [("a", dockerconfig({HUB_V1: "ivan"})), ("b", dockerconfig({"docker.io": "dora"}))], "nginx",
         [("b", "docker.io", "dora")]),
    Case("hub-library-path", "beyond (path prefix on the qualified name)", one({"docker.io/library": "lib"}), "nginx",
         [("a", "docker.io/library", "lib")]),
    Case("hub-org-then-host", "TestDockerKeyringLookup on Docker Hub",
         one({"docker.io/myorg": "org", "docker.io": "hub"}), "myorg/app",
         [("a", "docker.io/myorg", "org"), ("a", "docker.io", "hub")]),
    # Most specific first: the index is reverse sorted; a key's path is a string prefix of the image's.
    Case("deeper-path-first", "TestDockerKeyringLookup",
         one({"bar.example.com/pong": "grace", "bar.example.com": "ada"}), "bar.example.com/pong",
         [("a", "bar.example.com/pong", "grace"), ("a", "bar.example.com", "ada")]),
    Case("other-path-host-only", "TestDockerKeyringLookup",
         one({"bar.example.com/pong": "grace", "bar.example.com": "ada"}), "bar.example.com/ping",
         [("a", "bar.example.com", "ada")]),
    Case("sibling-prefix-matches", "TestDockerKeyringLookup",
         one({"bar.example.com/pong": "grace", "bar.example.com": "ada"}), "bar.example.com/pongz",
         [("a", "bar.example.com/pong", "grace"), ("a", "bar.example.com", "ada")]),
    Case("sub-path", "TestDockerKeyringLookup",
         one({"bar.example.com/pong": "grace", "bar.example.com": "ada"}), "bar.example.com/pong/pang",
         [("a", "bar.example.com/pong", "grace"), ("a", "bar.example.com", "ada")]),
    Case("bare-host-raw", "TestDockerKeyringLookup",
         one({"bar.example.com/pong": "grace", "bar.example.com": "ada"}), "bar.example.com",
         [("a", "bar.example.com", "ada")], raw=True),
    Case("bare-host-is-a-hub-image", "TestDockerKeyringLookup (as a Pod image: docker.io/library/bar.example.com)",
         one({"bar.example.com/pong": "grace", "bar.example.com": "ada"}), "bar.example.com"),
    Case("parent-domain", "TestDockerKeyringLookup", one({"bar.example.com": "ada"}), "example.com/app"),
    Case("sibling-domain", "TestDockerKeyringLookup", one({"bar.example.com": "ada"}), "foo.example.com/app"),
    Case("v1-path-is-host", "TestIssue3797", one({"https://quay.io/v1/": "rex"}), "quay.io/foo",
         [("a", "quay.io", "rex")]),
    Case("v1-path-is-host-deeper", "TestIssue3797", one({"https://quay.io/v1/": "rex"}), "quay.io/foo/bar",
         [("a", "quay.io", "rex")]),
    Case("v1-path-is-host-raw", "TestIssue3797", one({"https://quay.io/v1/": "rex"}), "quay.io",
         [("a", "quay.io", "rex")], raw=True),
    Case("team-matches-team-admin", "TestDockerKeyringLookup (pongz)", one({"quay.io/team": "team", "quay.io": "all"}),
         "quay.io/team-admin/app:1", [("a", "quay.io/team", "team"), ("a", "quay.io", "all")]),
    Case("trailing-slash-stops-sibling", "beyond (keyring.go Add keeps the path)", one({"quay.io/team/": "team"}),
         "quay.io/team-admin/app"),
    Case("trailing-slash-own-path", "beyond (keyring.go Add keeps the path)", one({"quay.io/team/": "team"}),
         "quay.io/team/app", [("a", "quay.io/team/", "team")]),
    Case("no-glob-in-path", "TestURLsMatch (no wildcards in paths)", one({"quay.io/team*": "team"}),
         "quay.io/team-a/app"),
    Case("reverse-sort-among-siblings", "beyond (reverse string order)",
         one({"quay.io/team": "team", "quay.io/team-admin": "admin"}), "quay.io/team-admin/app",
         [("a", "quay.io/team-admin", "admin"), ("a", "quay.io/team", "team")]),
    Case("exact-host-before-glob", "beyond (reverse string order: 'a' > '*')",
         one({"*.example.com": "glob", "a.example.com": "exact"}), "a.example.com/app",
         [("a", "a.example.com", "exact"), ("a", "*.example.com", "glob")]),
    Case("order-is-string-order-not-specificity", "beyond (reverse string order: 'a' > '*')",
         one({"*.example.com/team": "globteam", "a.example.com": "exact"}), "a.example.com/team/app",
         [("a", "a.example.com", "exact"), ("a", "*.example.com/team", "globteam")]),
    # Several Secrets: one keyring for all of them; a key's logins keep the Pod's Secret order.
    Case("same-key-pod-order", "Test_MakeDockerKeyring (several Secrets)",
         [("a", dockerconfig({"quay.io": "first"})), ("b", dockerconfig({"quay.io": "second"}))], "quay.io/app",
         [("a", "quay.io", "first"), ("b", "quay.io", "second")]),
    Case("same-key-pod-order-reversed", "Test_MakeDockerKeyring (several Secrets)",
         [("b", dockerconfig({"quay.io": "second"})), ("a", dockerconfig({"quay.io": "first"}))], "quay.io/app",
         [("b", "quay.io", "second"), ("a", "quay.io", "first")]),
    Case("specific-beats-pod-order", "TestDockerKeyringLookup across Secrets",
         [("a", dockerconfig({"quay.io": "host"})), ("b", dockerconfig({"quay.io/team": "team"}))], "quay.io/team/app",
         [("b", "quay.io/team", "team"), ("a", "quay.io", "host")]),
    Case("spellings-share-a-key", "TestIssue3797 across Secrets",
         [("a", dockerconfig({"https://quay.io": "x"})), ("b", dockerconfig({"quay.io/v2/": "y"}))], "quay.io/app",
         [("a", "quay.io", "x"), ("b", "quay.io", "y")]),
    Case("missing-secrets-skipped", "Test_MakeDockerKeyring (not matching)",
         [("a", dockerconfig({"ghcr.io": "gh"})), ("b", dockerconfig({"quay.io": "q"}))], "quay.io/app",
         [("b", "quay.io", "q")]),
    # Spelling: scheme dropped, hosts compared case-sensitively, ports and IPs are plain text.
    Case("http-scheme-dropped", "beyond (keyring.go Add)", one({"http://quay.io": "plain"}), "quay.io/app",
         [("a", "quay.io", "plain")]),
    Case("host-case-sensitive-key", "beyond (filepath.Match)", one({"Quay.io": "upper"}), "quay.io/app"),
    Case("host-case-sensitive-image", "beyond (filepath.Match)", one({"quay.io": "lower"}), "Quay.io/app"),
    Case("host-same-case", "beyond (filepath.Match)", one({"QUAY.IO": "upper"}), "QUAY.IO/app",
         [("a", "QUAY.IO", "upper")]),
    Case("ip-port", "TestURLsMatch (ports)", one({"127.0.0.1:5000": "ip"}), "127.0.0.1:5000/app",
         [("a", "127.0.0.1:5000", "ip")]),
    Case("ip-without-port", "TestURLsMatch (ports)", one({"127.0.0.1": "ip"}), "127.0.0.1:5000/app"),
    Case("localhost", "beyond", one({"localhost": "local"}), "localhost/app", [("a", "localhost", "local")]),
    Case("tag-and-digest-dropped", "beyond (image_manager.go: ParseImageName)", one({"quay.io/team/app": "app"}),
         "quay.io/team/app:1.2@sha256:" + "0" * 64, [("a", "quay.io/team/app", "app")]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_kubelet_offers(case: Case) -> None:
    """The exact logins, in order, for one image; `case.mirrors` names the kubelet test it follows."""
    (offer,) = offered(case.secrets, [case.image], normalize=not case.raw)
    assert offer.error is None
    want = [Login(server, user, f"{user}-pw", secret=secret) for secret, server, user in case.want]
    assert list(offer.logins) == want
    assert offer.found is bool(want)


def test_lookup_names() -> None:
    """What the kubelet looks up (image_manager.go: parsers.ParseImageName's repo); raw keeps the string."""
    images = [
        "nginx",
        "nginx:1.27",
        "index.docker.io/google/docker-registry",
        "myorg/app@sha256:" + "a" * 64,
        "quay.io/team/app:1",
        "localhost:5000/app",
        "bar.example.com",
        "Quay.io/app",
    ]
    names = [offer.lookup for offer in offered([], images)]
    assert names == [
        "docker.io/library/nginx",
        "docker.io/library/nginx",
        "docker.io/google/docker-registry",
        "docker.io/myorg/app",
        "quay.io/team/app",
        "localhost:5000/app",
        "docker.io/library/bar.example.com",
        "Quay.io/app",
    ]
    assert [offer.lookup for offer in offered([], images, normalize=False)] == images


def test_unparseable_image_fails_that_image_only() -> None:
    """image_manager.go: EnsureImageExists fails the pull (ErrInvalidImageName) before any lookup."""
    good, bad = offered(one({"quay.io": "q"}), ["quay.io/app", "quay.io/Team/App"])
    assert good.logins == (Login("quay.io", "q", "q-pw", secret="a"),)
    assert bad == Offer(
        "quay.io/Team/App",
        None,
        False,
        (),
        'couldn\'t parse image name "quay.io/Team/App": '
        "invalid reference format: repository name (Team/App) must be lowercase",
    )


AUTH = "dXNlcjpwYXNzd29yZA=="  # user:password, from secrets_test.go


@pytest.mark.parametrize(
    ("entry", "want"),
    [
        pytest.param({"auth": AUTH}, Login("test.registry.io", "user", "password", secret="a"), id="auth-only"),
        pytest.param(
            {"username": "user", "password": "password"},
            Login("test.registry.io", "user", "password", secret="a"),
            id="username-password",
        ),
        pytest.param(
            {"username": "other", "password": "other", "auth": AUTH},
            Login("test.registry.io", "user", "password", secret="a"),
            id="auth-wins",
        ),
        pytest.param(
            {"auth": AUTH.rstrip("=")}, Login("test.registry.io", "user", "password", secret="a"), id="auth-unpadded"
        ),
        pytest.param(
            {"auth": b64("user:pa:ss")}, Login("test.registry.io", "user", "pa:ss", secret="a"), id="colon-in-password"
        ),
        pytest.param(
            {"auth": AUTH, "email": "u@example.com"},
            Login("test.registry.io", "user", "password", secret="a", email="u@example.com"),
            id="email-kept",
        ),
        pytest.param(
            {"auth": AUTH, "identitytoken": "tok", "registrytoken": "rt"},
            Login("test.registry.io", "user", "password", secret="a"),
            id="tokens-dropped",
        ),
    ],
)
def test_entry_fields(entry: dict[str, str], want: Login) -> None:
    """Test_MakeDockerKeyring ("with .dockerconfigjson and auth field" / "username/password fields"),
    and config.go: DockerConfigEntry.UnmarshalJSON (auth, when set, replaces username and password;
    only username, password and email are read)."""
    content = json.dumps({"auths": {"test.registry.io": entry}}).encode()
    (offer,) = offered([("a", content)], ["test.registry.io/app"])
    assert offer.logins == (want,)
    # secrets_test.go looks up the bare "test.registry.io"; as a Pod image that is a Docker Hub name.
    (raw,) = offered([("a", content)], ["test.registry.io"], normalize=False)
    assert raw.logins == (want,)
    (pod,) = offered([("a", content)], ["test.registry.io"])
    assert not pod.found


@pytest.mark.parametrize(
    ("secret_type", "data", "found"),
    [
        pytest.param("kubernetes.io/dockerconfigjson", "dockerconfigjson", True, id="dockerconfigjson"),
        pytest.param("kubernetes.io/dockercfg", "dockercfg", True, id="dockercfg"),
        pytest.param("kubernetes.io/dockercfg", "dockerconfigjson", False, id="json-key-wrong-type"),
        pytest.param("kubernetes.io/dockerconfigjson", "dockercfg", False, id="cfg-key-wrong-type"),
        pytest.param("Opaque", "dockerconfigjson", False, id="opaque"),
    ],
)
def test_secret_shapes(secret_type: str, data: str, found: bool) -> None:
    """Test_MakeDockerKeyring (".dockerconfig and auth field", "but with wrong Secret Type"):
    a Secret counts only when its type and its key agree; any other Secret is skipped silently."""
    auths = {"test.registry.io": {"auth": AUTH}}
    content = auths if data == "dockercfg" else {"auths": auths}
    request = {
        "secrets": [{"name": "a", "type": secret_type, data: json.dumps(content)}],
        "images": ["test.registry.io/x"],
    }
    (offer,) = lookup(request)
    assert offer.error is None
    assert offer.logins == ((Login("test.registry.io", "user", "password", secret="a"),) if found else ())


def test_skipped_contents() -> None:
    """secrets.go: secretsToTrackedDockerConfigs skips an empty .dockerconfigjson; a file without
    "auths" (the legacy layout) decodes to no entries; an auths key that url.Parse refuses is
    logged and ignored by keyring.go Add. None of them is an error, the other logins still count."""
    secrets = [
        ("empty", b""),
        ("legacy", json.dumps({"quay.io": {"auth": AUTH}}).encode()),
        ("bad-key", dockerconfig({"quay.io:abc": "bad", "ghcr.io": "gh"})),
        ("good", dockerconfig({"quay.io": "q"})),
    ]
    quay, ghcr = offered(secrets, ["quay.io/app", "ghcr.io/app"])
    assert (quay.error, ghcr.error) == (None, None)
    assert quay.logins == (Login("quay.io", "q", "q-pw", secret="good"),)
    assert ghcr.logins == (Login("ghcr.io", "gh", "gh-pw", secret="bad-key"),)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(b'{"auths": {"quay.io": ', "unexpected end of JSON input", id="truncated"),
        pytest.param(
            b'{"auths": {"quay.io": {"username": 5}}}',
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.auths.username of type string",
            id="wrong-type",
        ),
        pytest.param(
            json.dumps({"auths": {"quay.io": {"auth": "not base64!"}}}).encode(),
            "illegal base64 data at input byte 3",
            id="auth-not-base64",
        ),
        pytest.param(
            json.dumps({"auths": {"quay.io": {"auth": b64("nocolon")}}}).encode(),
            "unable to parse auth field, must be formatted as base64(username:password)",
            id="auth-no-colon",
        ),
    ],
)
def test_malformed_secret_fails_every_image(content: bytes, error: str) -> None:
    """secrets.go: MakeDockerKeyring returns the decode error for the whole set, and
    image_manager.go: EnsureImageExists fails the pull with it: one bad Secret blocks every image
    of the Pod, even those another Secret has a login for."""
    secrets = [("good", dockerconfig({"quay.io": "q", "ghcr.io": "gh"})), ("bad", content)]
    offers = offered(secrets, ["quay.io/app", "ghcr.io/app", "nginx"])
    assert [(o.found, o.logins, o.error) for o in offers] == [(False, (), error)] * 3


def test_two_spellings_in_one_secret() -> None:
    """keyring.go Add: two spellings of one key in one Secret both count, but they come from a Go
    map, so their order changes from run to run; only the set is the kubelet's answer."""
    content = dockerconfig({"https://quay.io": "x", "quay.io": "y"})
    (offer,) = offered([("a", content)], ["quay.io/app"])
    assert set(offer.logins) == {Login("quay.io", "x", "x-pw", secret="a"), Login("quay.io", "y", "y-pw", secret="a")}
    assert len(offer.logins) == 2
