"""What an alert action delivers: one `AlertMessage`, the same for every sender, and the error they raise."""

from __future__ import annotations

import datetime as dt
import enum
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from fulcrum.controller.services.errors import ServiceError


class AlertLevel(enum.StrEnum):
    """Avi's alert levels, lowest first."""

    LOW = "ALERT_LOW"
    MEDIUM = "ALERT_MEDIUM"
    HIGH = "ALERT_HIGH"


class DeliveryError(ServiceError):
    """An action could not deliver the alert. The message says where and why, and never carries a
    secret (password, community, passphrase, token, or a webhook URL's path)."""


class InvalidActionConfig(DeliveryError):
    """The action's config dict is unusable (a key is missing or has a wrong type or value); the
    message names the key."""


@dataclass(frozen=True)
class AlertMessage:
    """One raised alert, as every action sender sees it.

    `name` is the alert config's name (what Avi lists as the alert's name); `event_id` or `metric_id`
    says what triggered it (the other is None); `timestamp` is seconds since the epoch; `details` holds
    JSON-compatible values (the triggering event's details or the metric's value and threshold)."""

    alert_uuid: str
    name: str
    level: AlertLevel
    summary: str
    timestamp: float
    event_id: str | None = None
    metric_id: str | None = None
    obj_type: str = ""
    obj_name: str = ""
    obj_uuid: str = ""
    tenant: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def source_id(self) -> str:
        """The event id or the metric id that raised the alert, or "" when neither is known."""
        return self.event_id or self.metric_id or ""

    def iso_time(self) -> str:
        """`timestamp` as RFC 3339 in UTC with microseconds, e.g. `2024-05-01T12:00:00.250000Z`."""
        moment = dt.datetime.fromtimestamp(self.timestamp, dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape webhooks post (and Splunk HEC carries as its `event`)."""
        return {
            "alert_uuid": self.alert_uuid,
            "name": self.name,
            "level": self.level.value,
            "summary": self.summary,
            "timestamp": self.timestamp,
            "time": self.iso_time(),
            "event_id": self.event_id,
            "metric_id": self.metric_id,
            "obj_type": self.obj_type,
            "obj_name": self.obj_name,
            "obj_uuid": self.obj_uuid,
            "tenant": self.tenant,
            "details": self.details,
        }


def os_error_reason(exc: OSError) -> str:
    """`Connection refused`, `Name or service not known`...: the system's words for the error number,
    not the exception text (asyncio's repeats the address, others can be long)."""
    if isinstance(exc, socket.gaierror):
        return exc.strerror or "name resolution failed"
    return os.strerror(exc.errno) if exc.errno else exc.__class__.__name__


def single_line(text: str) -> str:
    """`text` with control characters (newlines included) turned into spaces. Receivers often store
    or forward line by line, where a newline in an alert would start a forged record."""
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
