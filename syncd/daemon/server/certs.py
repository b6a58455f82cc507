"""Pure: the admission webhook's own CA and serving certificate, as PEM (the one cryptography importer).

The CA lives five years and signs a serving certificate of one year for the webhook's DNS names
(`<service>.<namespace>.svc` and its shorter forms) or the host of its URL. A certificate is
renewed once a third of its lifetime is left, or when the names it must carry changed; the CA
is kept across renewals, so the caBundle the apiserver trusts does not change with them.

When the CA itself is replaced (a third of its five years left), `ca.crt` holds the new CA and
then the old one, as long as the old one is valid: the caBundle the leader sets from it trusts
the serving certificates of both, so a replica still serving one signed by the old CA (it reads
the shared Secret again within a check interval) is not refused by the apiserver meanwhile, which
with `failurePolicy: Ignore` would admit Pods without their pull Secret. The next renewal of the
serving certificate, eight months on, drops the old CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=5 * 365)
CERT_LIFETIME = dt.timedelta(days=365)
RENEW_AT_LEFT = 1 / 3
# Keys of the kubernetes.io/tls Secret: tls.crt and tls.key serve, ca.crt and ca.key sign renewals.
CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"
_BACKDATE = dt.timedelta(minutes=5)  # clocks of the apiserver and syncd may disagree a little
Authority = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@dataclass(frozen=True)
class Bundle:
    """PEM bytes of the CA and the serving pair. repr shows no key."""

    ca_cert: bytes
    ca_key: bytes = b""
    cert: bytes = b""
    key: bytes = b""

    def __repr__(self) -> str:
        return "Bundle(<pem>)"

    @classmethod
    def of(cls, data: dict[str, bytes]) -> Bundle | None:
        parts = [data.get(k) for k in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)]
        if not all(parts):
            return None
        return cls(*(p or b"" for p in parts))

    def data(self) -> dict[str, bytes]:
        return {CA_CERT: self.ca_cert, CA_KEY: self.ca_key, TLS_CERT: self.cert, TLS_KEY: self.key}


def hosts_of(*, service: str, namespace: str, url_host: str | None) -> list[str]:
    if url_host:
        return [url_host]
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def renew_at(bundle: Bundle) -> dt.datetime | None:
    """When the bundle should be replaced; None when it cannot be read (replace it now)."""
    try:
        ca = _signing_ca(bundle.ca_cert)
        cert = x509.load_pem_x509_certificate(bundle.cert)
    except ValueError:
        return None
    return min(_renewal(ca), _renewal(cert))


def _signing_ca(ca_pem: bytes) -> x509.Certificate:
    """The CA that signs: the first of `ca.crt` (a replaced one may follow it for a while)."""
    return x509.load_pem_x509_certificates(ca_pem)[0]


def needs_new(bundle: Bundle | None, hosts: list[str], now: dt.datetime) -> bool:
    if bundle is None:
        return True
    due = renew_at(bundle)
    return due is None or due <= now or _names(bundle.cert) != sorted(hosts)


def issue(hosts: list[str], now: dt.datetime, previous: Bundle | None = None) -> Bundle:
    """A serving pair for `hosts`, signed by the previous CA while it has most of its life left."""
    reused = _reusable_ca(previous, now)
    ca_cert, ca_key = reused or _new_ca(now)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now, CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    trusted = _pem(ca_cert) + (b"" if reused else _still_valid_ca(previous, now))
    return Bundle(trusted, _key_pem(ca_key), _pem(cert), _key_pem(key))


def _still_valid_ca(previous: Bundle | None, now: dt.datetime) -> bytes:
    """The replaced CA's PEM while it is valid (trusted beside the new one), else nothing."""
    if previous is None:
        return b""
    try:
        old = _signing_ca(previous.ca_cert)
    except ValueError:
        return b""
    return _pem(old) if old.not_valid_after_utc > now else b""


def _reusable_ca(previous: Bundle | None, now: dt.datetime) -> Authority | None:
    if previous is None:
        return None
    try:
        cert = _signing_ca(previous.ca_cert)
        key = serialization.load_pem_private_key(previous.ca_key, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or _renewal(cert) <= now:
        return None
    return cert, key


def _new_ca(now: dt.datetime) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd admission webhook CA")])
    cert = (
        _builder(name, name, key.public_key(), now, CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime, life: dt.timedelta
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + life)
    )


def _renewal(cert: x509.Certificate) -> dt.datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return end - (end - start) * RENEW_AT_LEFT


def _names(cert_pem: bytes) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return []
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return sorted([*dns, *ips])


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
