"""Alert action senders: syslog, email, SNMP traps and webhooks, behind one `AlertSender` shape.

Each sender is built from its action's config dict, the stored object's data with every secret already
decrypted in place (the keys each module lists in `SECRET_KEYS`), and delivers one `AlertMessage`:

    sender = build_sender("syslog", alertsyslogconfig_data)
    await sender.send(message)          # raises DeliveryError with a reason that holds no secret

Building validates the dict and raises `InvalidActionConfig` (a DeliveryError) naming the bad key.
Senders are async; synchronous code runs one with `asyncio.run(sender.send(message))`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fulcrum.controller.services.notify.email import EmailSender
from fulcrum.controller.services.notify.message import (
    AlertLevel,
    AlertMessage,
    DeliveryError,
    InvalidActionConfig,
)
from fulcrum.controller.services.notify.snmp import SnmpTrapSender
from fulcrum.controller.services.notify.syslog import SyslogSender
from fulcrum.controller.services.notify.webhook import WebhookSender

__all__ = [
    "SENDERS",
    "AlertLevel",
    "AlertMessage",
    "AlertSender",
    "DeliveryError",
    "EmailSender",
    "InvalidActionConfig",
    "SnmpTrapSender",
    "SyslogSender",
    "WebhookSender",
    "build_sender",
]


class AlertSender(Protocol):
    async def send(self, message: AlertMessage) -> None: ...


SENDERS: dict[str, Callable[[Mapping[str, Any]], AlertSender]] = {
    "syslog": SyslogSender,
    "email": EmailSender,
    "snmp_trap": SnmpTrapSender,
    "webhook": WebhookSender,
}


def build_sender(kind: str, config: Mapping[str, Any]) -> AlertSender:
    """The sender for an action of `kind` (a key of `SENDERS`) with its config dict."""
    try:
        sender_class = SENDERS[kind]
    except KeyError:
        raise InvalidActionConfig(
            f"unknown action kind {kind!r}; expected one of {', '.join(SENDERS)}"
        ) from None
    return sender_class(config)
