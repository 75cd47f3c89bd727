r"""HAProxy's configuration quoting rules, so that no value can ever change the shape of a config line.

HAProxy splits a line into words on unquoted spaces, ends it at an unquoted `#` or at CR/LF, expands
`$NAME` inside double quotes and interprets backslash escapes (`\\`, `\"`, `\$`, `\xHH`, ...). A value
rendered through `quote` comes back from HAProxy's parser as exactly one word equal to the value.
"""

from __future__ import annotations

import re

# Characters HAProxy's line parser copies literally and no keyword we emit treats specially.
_BARE = re.compile(r"[A-Za-z0-9._/:@,+=%()-]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token (header and cookie names, methods)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$"}


def quote(value: str) -> str:
    """One HAProxy word equal to `value`: bare when harmless, else double-quoted with escapes."""
    if _BARE.fullmatch(value):
        return value
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def quote_logformat(value: str) -> str:
    """Like `quote`, for arguments HAProxy reads as a log-format string (where `%` starts a tag)."""
    return quote(value.replace("%", "%%"))


def is_token(value: str) -> bool:
    """True for an RFC 9110 token: what a header name, cookie name or HTTP method must be."""
    return bool(_TOKEN.fullmatch(value))


def is_printable(value: str, *, allow_space: bool) -> bool:
    """True when `value` has no control character (and no space unless allowed)."""
    return all(ord(c) >= 0x20 and ord(c) != 0x7F and (allow_space or c != " ") for c in value)


def display_text(value: str) -> str:
    """Free text for humans (descriptions): control characters become '?', then quoted."""
    return quote("".join(c if c.isprintable() else "?" for c in value))
