"""One way to build the client TLS context that syslog, SMTP and webhook senders verify servers with."""

from __future__ import annotations

import ssl

from fulcrum.controller.services.notify.message import InvalidActionConfig


def client_context(ca_pem: str | None, verify: bool = True) -> ssl.SSLContext:
    """A TLS 1.2+ client context. With `verify`, the server's chain must lead to `ca_pem` (one or more
    PEM certificates) or, without it, to the system's trust store, and its name must match; without
    `verify` (an explicit opt-out in the action's config) any certificate is accepted."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_pem:
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise InvalidActionConfig("ca_pem must hold at least one PEM certificate")
        try:
            context = ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError):
            raise InvalidActionConfig("ca_pem is not a valid PEM certificate bundle") from None
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def describe_tls_error(exc: BaseException) -> str:
    """A short reason for a failed handshake, e.g. "certificate verify failed: self-signed certificate"."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc.__class__.__name__}"
    return exc.__class__.__name__
