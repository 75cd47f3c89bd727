"""Typed reads from an action's config dict, so every sender rejects a bad key the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fulcrum.controller.services.notify.message import InvalidActionConfig


def text(config: Mapping[str, Any], key: str, default: str | None = None, *, where: str = "") -> str:
    """A non-empty string, or `default` when the key is absent, None or "" (missing and no default
    raises)."""
    value = config.get(key)
    if value is None or value == "":
        if default is None:
            raise InvalidActionConfig(f"{where}{key} is required")
        return default
    if not isinstance(value, str):
        raise InvalidActionConfig(f"{where}{key} must be a string")
    return value


def optional_text(config: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidActionConfig(f"{where}{key} must be a string")
    return value


def integer(
    config: Mapping[str, Any], key: str, default: int, *, low: int, high: int, where: str = ""
) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidActionConfig(f"{where}{key} must be an integer from {low} to {high}")
    return value


def number(
    config: Mapping[str, Any], key: str, default: float, *, low: float, high: float, where: str = ""
) -> float:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidActionConfig(f"{where}{key} must be a number from {low} to {high}")
    return float(value)


def flag(config: Mapping[str, Any], key: str, default: bool, *, where: str = "") -> bool:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidActionConfig(f"{where}{key} must be true or false")
    return value


def choice(
    config: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...], *, where: str = ""
) -> str:
    value = text(config, key, default, where=where).upper()
    if value not in allowed:
        raise InvalidActionConfig(f"{where}{key} must be one of {', '.join(allowed)}")
    return value


def address_list(config: Mapping[str, Any], key: str, *, where: str = "") -> tuple[str, ...]:
    """A comma-separated string (Avi's form) or a list of strings, without blanks."""
    value = config.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise InvalidActionConfig(f"{where}{key} must be a comma-separated string or a list of strings")
    return tuple(item.strip() for item in items if item.strip())


def mapping(config: Mapping[str, Any], key: str, *, where: str = "") -> Mapping[str, Any]:
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidActionConfig(f"{where}{key} must be an object")
    return value
