"""Typed service errors; the API edge maps each to one HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a service raises on purpose; `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    """The request is malformed or violates a rule (400). The message names the field."""


class Unauthenticated(ServiceError):
    """No or wrong credentials (401)."""


class Forbidden(ServiceError):
    """Authenticated, may see the object, but the role does not allow the action (403)."""


class NotFound(ServiceError):
    """No such object, or one the caller may not know about (404)."""


class Conflict(ServiceError):
    """The change contradicts the current state: a name taken, an object still referenced (409)."""


class PreconditionFailed(ServiceError):
    """The object changed since the caller read it (`_last_modified` mismatch, 412)."""


class RateLimited(ServiceError):
    """Too many failed logins; retry after `retry_after` seconds (429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unsupported(ServiceError):
    """A valid request for an option this provider does not implement (501, as Octavia answers)."""


class Unavailable(ServiceError):
    """A system this request depends on cannot be reached right now (503); retrying later may work."""
