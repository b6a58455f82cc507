"""The webhook's own CA and serving certificate (syncd.daemon.server.certs) and their keeper
(syncd.daemon.webhook_tls) against a fake of the two objects it touches."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from syncd.config import parse_config
from syncd.core.errors import KubeError
from syncd.daemon.server.certs import CA_CERT, Bundle, hosts_of, issue, needs_new, renew_at
from syncd.daemon.webhook_tls import TlsKeeper, url_host

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
HOSTS = hosts_of(service="syncd-webhook", namespace="syncd", url_host=None)


def test_the_serving_certificate_is_signed_by_the_ca_for_the_service_names(tmp_path: Path) -> None:
    bundle = issue(HOSTS, dt.datetime.now(dt.UTC))
    cert = x509.load_pem_x509_certificate(bundle.cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(HOSTS)
    assert "syncd-webhook.syncd.svc" in HOSTS
    (tmp_path / "ca.crt").write_bytes(bundle.ca_cert)
    (tmp_path / "tls.crt").write_bytes(bundle.cert)
    (tmp_path / "tls.key").write_bytes(bundle.key)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")  # the pair matches
    client = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    assert client.cert_store_stats()["x509_ca"] == 1
    assert "PRIVATE KEY" not in repr(bundle)


def test_renewal_is_due_with_a_third_of_the_life_left_and_keeps_the_ca() -> None:
    bundle = issue(HOSTS, NOW)
    due = renew_at(bundle)
    assert due is not None
    assert NOW + dt.timedelta(days=240) < due < NOW + dt.timedelta(days=250)
    assert not needs_new(bundle, HOSTS, due - dt.timedelta(seconds=1))
    assert needs_new(bundle, HOSTS, due)
    assert needs_new(bundle, ["other.syncd.svc"], NOW)  # the names changed
    renewed = issue(HOSTS, due, bundle)
    assert renewed.ca_cert == bundle.ca_cert
    assert renewed.cert != bundle.cert


def test_an_ip_url_host_is_an_ip_san() -> None:
    assert url_host("https://127.0.0.1:8443/mutate") == "127.0.0.1"
    assert url_host("https://[::1]:8443/mutate") == "::1"
    assert url_host("https://hooks.example/mutate") == "hooks.example"
    cert = x509.load_pem_x509_certificate(issue(["127.0.0.1"], NOW).cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


class FakeObjects:
    def __init__(self) -> None:
        self.secret: tuple[dict[str, bytes], str] | None = None
        self.hooks: list[tuple[str, bytes]] | None = [("pods.syncd.io", b"")]
        self.writes: list[str] = []
        self.race: dict[str, bytes] | None = None  # another replica's Secret, created just before ours

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str] | None:
        return self.secret

    def create_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        if self.race is not None:
            self.secret = (self.race, "1")
            raise KubeError("exists", status=409)
        self.writes.append("create")
        self.secret = (data, "1")

    def replace_secret(self, namespace: str, name: str, data: dict[str, bytes], resource_version: str) -> None:
        assert self.secret is not None
        assert resource_version == self.secret[1]
        self.writes.append("replace")
        self.secret = (data, str(int(resource_version) + 1))

    def ca_bundles(self, name: str) -> list[tuple[str, bytes]] | None:
        return self.hooks

    def set_ca_bundle(self, name: str, webhooks: list[str], bundle: bytes) -> None:
        self.writes.append(f"caBundle {name}")
        self.hooks = [(w, bundle) for w in webhooks]


CONFIG = parse_config(
    {
        "credentials": [{"name": "c", "registries": ["r.example"], "docker_config": "/dev/null"}],
        "secrets": [{"name": "s", "credentials": ["c"], "namespaces": {"names": ["a"]}}],
        "admission": {"enabled": True},
    }
)


def keeper(objects: FakeObjects, tmp_path: Path, *, leader: bool, now: list[dt.datetime]) -> TlsKeeper:
    served: list[Path] = []
    return TlsKeeper(
        objects,
        CONFIG,
        is_leader=lambda: leader,
        on_files=lambda files: served.append(files.cert_file),
        clock=lambda: now[0],
        directory=tmp_path / "tls",
    )


def test_the_first_replica_creates_the_secret_the_leader_sets_the_ca_bundle(tmp_path: Path) -> None:
    objects, now = FakeObjects(), [NOW]
    first = keeper(objects, tmp_path, leader=True, now=now)
    wait = first.check()
    assert objects.writes == ["create", "caBundle syncd"]
    assert objects.secret is not None
    assert objects.hooks == [("pods.syncd.io", objects.secret[0][CA_CERT])]
    assert first.files.cert_file.read_bytes() == objects.secret[0]["tls.crt"]
    assert oct(first.files.key_file.stat().st_mode & 0o777) == "0o600"
    assert wait == CONFIG.schedule.relist_interval.total_seconds()
    # Nothing changed: the next round writes nothing.
    first.check()
    assert objects.writes == ["create", "caBundle syncd"]


def test_a_standby_reads_the_shared_secret_and_never_patches(tmp_path: Path) -> None:
    objects, now = FakeObjects(), [NOW]
    keeper(objects, tmp_path / "1", leader=True, now=now).check()
    standby = keeper(objects, tmp_path / "2", leader=False, now=now)
    objects.hooks = [("pods.syncd.io", b"reset by helm")]
    standby.check()
    assert objects.writes == ["create", "caBundle syncd"]
    assert objects.secret is not None
    assert standby.files.cert_file.read_bytes() == objects.secret[0]["tls.crt"]


def test_a_lost_create_race_takes_the_winners_secret(tmp_path: Path) -> None:
    objects, now = FakeObjects(), [NOW]
    objects.race = issue(HOSTS, NOW).data()
    late = keeper(objects, tmp_path, leader=False, now=now)
    late.check()
    assert objects.writes == []
    assert late.files.cert_file.read_bytes() == objects.race["tls.crt"]


def test_renewal_replaces_the_secret_and_keeps_the_ca_bundle(tmp_path: Path) -> None:
    objects, now = FakeObjects(), [NOW]
    leader = keeper(objects, tmp_path, leader=True, now=now)
    leader.check()
    assert objects.secret is not None
    before = Bundle.of(objects.secret[0])
    assert before is not None
    due = renew_at(before)
    assert due is not None
    now[0] = due
    leader.check()
    assert objects.writes == ["create", "caBundle syncd", "replace"]
    after = Bundle.of(objects.secret[0])
    assert after is not None
    assert after.ca_cert == before.ca_cert
    assert after.cert != before.cert
    assert leader.files.cert_file.read_bytes() == after.cert


@pytest.mark.parametrize("status", [403, 500])
def test_other_failures_are_raised_for_the_loop_to_retry(tmp_path: Path, status: int) -> None:
    class Refusing(FakeObjects):
        def create_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
            raise KubeError("refused", status=status)

    with pytest.raises(KubeError):
        keeper(Refusing(), tmp_path, leader=True, now=[NOW]).check()


def test_a_replaced_ca_stays_trusted_beside_the_new_one_until_the_next_renewal() -> None:
    first = issue(HOSTS, NOW)
    ca_due = NOW + dt.timedelta(days=5 * 365) * (2 / 3)
    replaced = issue(HOSTS, ca_due, first)
    trusted = x509.load_pem_x509_certificates(replaced.ca_cert)
    old_ca = x509.load_pem_x509_certificate(first.ca_cert)
    assert len(trusted) == 2
    assert trusted[1] == old_ca
    assert trusted[0] != old_ca
    # the new serving certificate is signed by the new CA, the old one by the old: both verify
    assert _signed_by(replaced.cert, trusted[0])
    assert not _signed_by(replaced.cert, old_ca)
    assert _signed_by(first.cert, trusted[1])
    # the next renewal of the serving certificate keeps the new CA and drops the old one
    later = issue(HOSTS, ca_due + dt.timedelta(days=250), replaced)
    assert x509.load_pem_x509_certificates(later.ca_cert) == trusted[:1]
    # an expired old CA is never carried
    assert len(x509.load_pem_x509_certificates(issue(HOSTS, NOW + dt.timedelta(days=6 * 365), first).ca_cert)) == 1


def _signed_by(cert_pem: bytes, ca: x509.Certificate) -> bool:
    try:
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
