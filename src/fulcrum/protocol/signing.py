"""HMAC-SHA256 request signatures for the SE protocol: who sent it, that it is fresh and unmodified."""

from __future__ import annotations

import hashlib
import hmac

SE_HEADER = "X-Fulcrum-SE"
TIMESTAMP_HEADER = "X-Fulcrum-Timestamp"
SIGNATURE_HEADER = "X-Fulcrum-Signature"
MAX_SKEW_S = 300.0


def signature(credential: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    """Signature over the request line, the timestamp and a digest of the body."""
    message = "\n".join((method.upper(), path, timestamp, hashlib.sha256(body).hexdigest())).encode()
    return hmac.new(credential.encode(), message, hashlib.sha256).hexdigest()


def headers(se_uuid: str, credential: str, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
    timestamp = f"{now:.3f}"
    return {
        SE_HEADER: se_uuid,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(credential, method, path, timestamp, body),
    }


def verify(
    credential: str, method: str, path: str, timestamp: str, body: bytes, given: str, now: float
) -> str | None:
    """None when the signature is valid and fresh, else the reason it is not."""
    try:
        sent = float(timestamp)
    except ValueError:
        return "malformed timestamp"
    if abs(now - sent) > MAX_SKEW_S:
        return "timestamp outside the allowed clock skew"
    expected = signature(credential, method, path, timestamp, body)
    if not hmac.compare_digest(expected, given):
        return "bad signature"
    return None
