r"""Regular expressions that mean the same to Python's `re` (which validates them) and to HAProxy's PCRE2
(which evaluates them on the data plane).

The two engines share a large core but differ at the edges: `\Z`, `\v`, `\N`, `\u`, octal escapes,
`{,n}`, POSIX classes and nested sets, Unicode classes. Rather than list every difference, `check_regex`
accepts only the common core and names what it refuses:

* printable ASCII only: HAProxy matches bytes (no UTF mode), Python matches characters, so a non-ASCII
  literal or a class like `[é]` would not mean the same; `\d`, `\w`, `\s`, `\b` are ASCII on the data
  plane (as with Python's `re.ASCII`);
* escapes: any punctuation (a literal), `\d \D \w \W \s \S \b \B \A`, `\t \n \r \f`, `\xHH` and a
  single-digit back-reference; inside a class the same without `\b \B \A` and back-references;
* groups: `(...)`, `(?:...)`, look-arounds `(?=` `(?!` `(?<=` `(?<!`, `(?P<name>...)`, `(?P=name)` and
  the flags i, m, s (`(?i)` at the start, or scoped `(?i:...)`);
* `{` only as a quantifier `{n}`, `{n,}`, `{n,m}` after something to repeat, `}` only closing one;
  a literal `[`, `]`, `{` or `}` is written escaped;
* it compiles with Python without a warning (Python warns about constructs whose meaning will change).
"""

from __future__ import annotations

import re
import warnings

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_QUANTIFIER = re.compile(r"\{[0-9]+(,[0-9]*)?\}")
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_FLAGS = re.compile(r"\(\?[ims]+([:)])")
_HEX = re.compile(r"[0-9A-Fa-f]{2}")
_ESCAPES_OUTSIDE = set("dDwWsSbBAtnrf")
_ESCAPES_INSIDE = set("dDwWsStnrf")


class RegexError(ValueError):
    pass


def _escape(value: str, i: int, in_class: bool) -> int:
    """Check the escape starting at value[i] (a backslash); return the index after it."""
    if i + 1 >= len(value):
        raise RegexError("ends with a lone backslash")
    char = value[i + 1]
    if not char.isalnum():
        return i + 2  # an escaped punctuation character is a literal in both engines
    if char in (_ESCAPES_INSIDE if in_class else _ESCAPES_OUTSIDE):
        return i + 2
    if char == "x" and _HEX.fullmatch(value, i + 2, i + 4):
        return i + 4
    if not in_class and char in "123456789" and not value[i + 2 : i + 3].isdigit():
        return i + 2
    raise RegexError(
        f"escape \\{char} is not supported: it means different things to Python and to HAProxy's PCRE"
    )


def _group(value: str, i: int) -> int:
    """Check the group opening at value[i] (a parenthesis); return the index after its opening."""
    if value[i + 1 : i + 2] != "?":
        return i + 1
    rest = value[i + 2 :]
    for opening in ("?:", "?=", "?!", "?<=", "?<!"):
        if value.startswith(opening, i + 1):
            return i + 1 + len(opening)
    if rest.startswith(("P<", "P=")):
        end = rest.find(">" if rest[1] == "<" else ")")
        if end > 2 and _GROUP_NAME.fullmatch(rest, 2, end):
            return i + 2 + end + 1
        raise RegexError("a named group needs a name of letters, digits and _")
    flags = _FLAGS.match(value, i)
    if flags is not None:
        if flags.group(1) == ")" and i != 0:
            raise RegexError("inline flags like (?i) must open the expression; use (?i:...) inside it")
        return flags.end()
    raise RegexError(f"group {value[i : i + 4]!r}... is not supported (use (?:, look-arounds, (?P<name>)")


def check_regex(value: str) -> str:
    """`value` if it is a regular expression both engines read the same way; else RegexError."""
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise RegexError("a regular expression must be printable ASCII (escape other bytes as \\xHH)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(value)
    except (re.error, Warning) as error:
        raise RegexError(f"is not a valid regular expression: {error}") from None
    i = 0
    can_repeat = False  # something precedes that a `{n}` quantifier can apply to
    while i < len(value):
        char = value[i]
        if char == "\\":
            i = _escape(value, i, in_class=False)
            can_repeat = True
        elif char == "[":
            i += 2 if value[i + 1 : i + 2] == "^" else 1
            if value[i : i + 1] == "]":
                raise RegexError("write a ']' inside a character class escaped (\\])")
            while i < len(value) and value[i] != "]":
                if value[i] == "\\":
                    i = _escape(value, i, in_class=True)
                elif value[i] == "[":
                    raise RegexError(
                        "write a '[' inside a character class escaped (\\[); POSIX classes are not supported"
                    )
                else:
                    i += 1
            i += 1
            can_repeat = True
        elif char == "{":
            quantifier = _QUANTIFIER.match(value, i)
            if quantifier is None or not can_repeat:
                raise RegexError("a literal '{' must be escaped (\\{); a quantifier is {n}, {n,} or {n,m}")
            i = quantifier.end()
            can_repeat = False
        elif char == "}":
            raise RegexError("a literal '}' must be escaped (\\})")
        elif char == "(":
            i = _group(value, i)
            can_repeat = False
        elif char in "|":
            i += 1
            can_repeat = False
        else:
            i += 1
            can_repeat = char not in "*+?^"
    return value
