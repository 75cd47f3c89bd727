"""Checks a certificate and its private key before they are stored, and describes the certificate."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from fulcrum.controller.services.errors import InvalidInput


def describe(pem: str) -> dict[str, object]:
    """Parse the first certificate in `pem` and return its facts (CertificateInfo fields)."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidInput(f"certificate.certificate: not a readable PEM certificate ({exc})") from None
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in sans.get_values_for_type(x509.DNSName)] + [
            str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial_number": format(cert.serial_number, "x"),
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
        "subject_alt_names": names,
        "self_signed": cert.subject == cert.issuer,
    }


def normalise_key(key_pem: str, passphrase: str | None, cert_pem: str) -> str:
    """Return the key as unencrypted PKCS#8 PEM after checking that it belongs to the certificate."""
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), passphrase.encode() if passphrase else None
        )
    except TypeError:
        raise InvalidInput("key: the private key is encrypted; give key_passphrase") from None
    except ValueError:
        raise InvalidInput("key: not a readable PEM private key, or key_passphrase is wrong") from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey,
    ):
        raise InvalidInput("key: only RSA, EC and EdDSA keys are supported")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise InvalidInput("key: the private key does not match the certificate")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def expired(info: dict[str, object], now: dt.datetime) -> bool:
    return dt.datetime.fromisoformat(str(info["not_after"])) < now
