"""Validated scalar types shared by every config object (names, ports, addresses, references)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _check_name(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control or line-break characters")
    if not value.strip():
        raise ValueError("must not be blank")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _check_text(value: str) -> str:
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_check_name)]
Description = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_check_text)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IPv4 or IPv6 address") from None


def _check_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid network in CIDR notation") from None


IPAddress = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_ip)]
Network = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_network)]

_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _check_hostname(value: str) -> str:
    candidate = value.rstrip(".")
    if not candidate or len(candidate) > 253 or not all(_DNS_LABEL.match(p) for p in candidate.split(".")):
        raise ValueError(f"{value!r} is not a valid DNS name")
    return value.lower()


Hostname = Annotated[str, StringConstraints(max_length=255), AfterValidator(_check_hostname)]

# RFC 9110 token: what may appear in an HTTP header or cookie name.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_token(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} is not a valid HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
    return value


HttpToken = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_check_token)]


@dataclass(frozen=True)
class Ref:
    """Marks a string field as a reference to an object of `target` type."""

    target: str


@dataclass(frozen=True)
class Secret:
    """Marks a field as write-only: encrypted at rest, never returned, redacted in events."""


def ref(target: str) -> type[str]:
    """Annotated reference type for a field pointing at an object of type `target`."""
    return Annotated[str, StringConstraints(min_length=1, max_length=512), Ref(target)]  # type: ignore[return-value]


class Strict(BaseModel):
    """Base for config objects: unknown fields are errors, so a typo never silently vanishes."""

    model_config = ConfigDict(extra="forbid", validate_default=True, str_strip_whitespace=False)


def reserved_addresses(extra: tuple[str, ...] = ()) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses no pool server or monitor may target (cloud metadata services by default)."""
    base = ("169.254.169.254/32", "fd00:ec2::254/128")
    return [ipaddress.ip_network(n, strict=False) for n in (*base, *extra)]
