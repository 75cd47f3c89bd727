"""Self-signed certificates for tests: one generator instead of one per test module."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def self_signed(
    common_name: str = "www.example.com",
    dns_names: tuple[str, ...] | None = None,
    ip_names: tuple[str, ...] = (),
    passphrase: str | None = None,
    key_type: str = "ec",
) -> tuple[str, str]:
    """(certificate PEM, private key PEM) of a fresh self-signed certificate, valid from a day ago for
    30 days. The subject is `CN=<common_name>`; the subject alternative names are `dns_names` (by
    default just the common name) and `ip_names`, and the extension is left out when both are empty.
    The key is P-256 (`key_type="ec"`) or RSA 2048 (`"rsa"`), as PKCS#8, encrypted when `passphrase`
    is given."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown key type {key_type!r} (expected 'ec' or 'rsa')")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    sans: list[x509.GeneralName] = [
        x509.DNSName(name) for name in (dns_names if dns_names is not None else (common_name,))
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_names]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()
