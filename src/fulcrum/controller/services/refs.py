"""Reference parsing and resolution: every accepted spelling becomes `/api/<type>/<uuid>`.

Accepted spellings for a field that points at a pool:
  `/api/pool/pool-<uuid>`, `https://ctrl/api/pool/pool-<uuid>`, `pool-<uuid>`,
  `/api/pool?name=web`, and a bare name `web`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from fulcrum.controller.services.errors import InvalidInput

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PATH = re.compile(rf"^/api/(?P<type>[a-z]+)/(?P<uuid>[a-z]+-{_UUID})$")
_BY_NAME = re.compile(r"^/api/(?P<type>[a-z]+)$")


@dataclass(frozen=True)
class ParsedRef:
    type: str
    uuid: str | None = None
    name: str | None = None


def canonical(type_: str, uuid: str) -> str:
    return f"/api/{type_}/{uuid}"


def uuid_of(canonical_ref: str) -> str:
    return canonical_ref.rsplit("/", 1)[-1]


def parse(value: object, expected: str, where: str) -> ParsedRef:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: a reference must be a non-empty string")
    text = value.split("#", 1)[0]  # `/api/pool/pool-x#web` is how references print with names
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError:
            raise InvalidInput(
                f"{where}: {value!r} is not a reference (/api/{expected}/<uuid> or name)"
            ) from None
        text = parts.path + (f"?{parts.query}" if parts.query else "")
    if text.startswith("/api/"):
        path, _, query = text.partition("?")
        match = _PATH.match(path)
        if match and not query:
            return _typed(ParsedRef(match["type"], uuid=match["uuid"]), expected, where)
        match = _BY_NAME.match(path)
        names = parse_qs(query, keep_blank_values=True).get("name", []) if match else []
        if match and len(names) == 1 and names[0]:
            return _typed(ParsedRef(match["type"], name=names[0]), expected, where)
        raise InvalidInput(f"{where}: {value!r} is not a reference (/api/{expected}/<uuid> or name)")
    if re.fullmatch(rf"{re.escape(expected)}-{_UUID}", text):
        return ParsedRef(expected, uuid=text)
    return ParsedRef(expected, name=text)


def _typed(ref: ParsedRef, expected: str, where: str) -> ParsedRef:
    if ref.type != expected:
        raise InvalidInput(f"{where}: expected a reference to {expected}, got one to {ref.type}")
    if ref.uuid is not None and not ref.uuid.startswith(f"{expected}-"):
        raise InvalidInput(f"{where}: {ref.uuid!r} is not a {expected} uuid")
    return ref
