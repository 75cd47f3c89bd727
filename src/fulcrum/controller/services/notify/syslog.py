"""Alerts as RFC 5424 syslog messages, over UDP (RFC 5426), TCP (RFC 6587 octet counting) or TLS
(RFC 5425).

The config dict is an Avi `alertsyslogconfig`'s data:

    {
      "sender_hostname": "ctrl-1",      # optional; the HOSTNAME field, default this host's name
      "facility": "LOCAL4",             # optional; a name (KERN..LOCAL7) or 0..23, default LOCAL4 (20)
      "timeout_s": 5,                   # optional; connect and send timeout for TCP/TLS
      "syslog_servers": [
        {"syslog_server": "10.0.0.5", "syslog_server_port": 514, "protocol": "UDP"},
        {"syslog_server": "logs.example.com", "syslog_server_port": 6514, "protocol": "TLS",
         "ca_pem": "-----BEGIN CERTIFICATE-----...", "verify": true, "tls_server_name": "logs"}
      ]
    }

`protocol` is UDP (default), TCP or TLS; the port defaults to 514, or 6514 for TLS. For TLS the server
certificate is verified against `ca_pem` (or the system store without it) and the host name (or
`tls_server_name`) unless `verify` is false. Nothing here is secret.

The message is built by the pure `format_message`; the header and structured data are:

    <PRI>1 TIMESTAMP HOSTNAME fulcrum - MSGID [fulcrum@32473 uuid=".." alert=".." level=".." ...] BOM summary

PRI = facility * 8 + severity, with severity from the alert level (`SEVERITY`): ALERT_HIGH -> 2 (crit),
ALERT_MEDIUM -> 4 (warning), ALERT_LOW -> 5 (notice). MSGID is the event or metric id. 32473 is the
private enterprise number RFC 5612 reserves for documentation; an operator who needs a registered SD-ID
must patch `SD_ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fulcrum.controller.services.notify import config as cfg
from fulcrum.controller.services.notify.message import (
    AlertLevel,
    AlertMessage,
    DeliveryError,
    InvalidActionConfig,
    os_error_reason,
    single_line,
)
from fulcrum.controller.services.notify.tls import client_context, describe_tls_error

log = logging.getLogger(__name__)

SECRET_KEYS: tuple[str, ...] = ()
APP_NAME = "fulcrum"
SD_ID = "fulcrum@32473"
FACILITY_LOCAL4 = 20
FACILITIES = {
    "KERN": 0, "USER": 1, "MAIL": 2, "DAEMON": 3, "AUTH": 4, "SYSLOG": 5, "LPR": 6, "NEWS": 7,
    "UUCP": 8, "CRON": 9, "AUTHPRIV": 10, "FTP": 11, "NTP": 12, "SECURITY": 13, "CONSOLE": 14,
    "SOLARIS_CRON": 15, "LOCAL0": 16, "LOCAL1": 17, "LOCAL2": 18, "LOCAL3": 19, "LOCAL4": 20,
    "LOCAL5": 21, "LOCAL6": 22, "LOCAL7": 23,
}  # fmt: skip
SEVERITY = {AlertLevel.HIGH: 2, AlertLevel.MEDIUM: 4, AlertLevel.LOW: 5}  # crit, warning, notice
MAX_MESSAGE_BYTES = 8192  # the whole message; the summary is cut (on a character boundary) to fit
BOM = "\ufeff"


class Transport(enum.StrEnum):
    UDP = "UDP"
    TCP = "TCP"
    TLS = "TLS"


@dataclass(frozen=True)
class SyslogServer:
    host: str
    port: int
    transport: Transport
    ca_pem: str | None = None
    verify: bool = True
    tls_server_name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.transport.value.lower()}://{self.host}:{self.port}"


@dataclass(frozen=True)
class SyslogSettings:
    servers: tuple[SyslogServer, ...]
    facility: int
    hostname: str
    timeout_s: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SyslogSettings:
        raw_servers = config.get("syslog_servers")
        if not isinstance(raw_servers, list) or not raw_servers:
            raise InvalidActionConfig("syslog_servers must be a non-empty list")
        servers = tuple(_server(item, f"syslog_servers[{i}].") for i, item in enumerate(raw_servers))
        return cls(
            servers=servers,
            facility=_facility(config.get("facility")),
            hostname=cfg.text(config, "sender_hostname", socket.gethostname()),
            timeout_s=cfg.number(config, "timeout_s", 5.0, low=0.1, high=120),
        )


def _server(item: object, where: str) -> SyslogServer:
    if not isinstance(item, Mapping):
        raise InvalidActionConfig(f"{where[:-1]} must be an object")
    transport = Transport(cfg.choice(item, "protocol", "UDP", tuple(Transport), where=where))
    default_port = 6514 if transport is Transport.TLS else 514
    ca_pem = cfg.optional_text(item, "ca_pem", where=where)
    if ca_pem:
        try:
            client_context(ca_pem)  # a bad bundle is a config error, found before any connection
        except InvalidActionConfig as exc:
            raise InvalidActionConfig(f"{where}{exc.message}") from None
    return SyslogServer(
        host=cfg.text(item, "syslog_server", where=where),
        port=cfg.integer(item, "syslog_server_port", default_port, low=1, high=65535, where=where),
        transport=transport,
        ca_pem=ca_pem,
        verify=cfg.flag(item, "verify", True, where=where),
        tls_server_name=cfg.optional_text(item, "tls_server_name", where=where),
    )


def _facility(value: object) -> int:
    if value is None:
        return FACILITY_LOCAL4
    if isinstance(value, str) and value.upper() in FACILITIES:
        return FACILITIES[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 23:
        return value
    raise InvalidActionConfig("facility must be a syslog facility name (e.g. LOCAL4) or 0..23")


# --- the message (pure) ---------------------------------------------------------------------------


def format_message(message: AlertMessage, *, facility: int, hostname: str) -> bytes:
    """The RFC 5424 message for `message`, as UTF-8, at most `MAX_MESSAGE_BYTES` long."""
    pri = facility * 8 + SEVERITY[message.level]
    header = " ".join(
        (
            f"<{pri}>1",
            message.iso_time(),
            _header_field(hostname, 255),
            APP_NAME,
            "-",  # PROCID: the controller's pid tells a receiver nothing useful
            _header_field(message.source_id, 32),
        )
    )
    params = {
        "uuid": message.alert_uuid,
        "alert": message.name,
        "level": message.level.value,
        "obj_type": message.obj_type,
        "obj": message.obj_name,
        "obj_uuid": message.obj_uuid,
        "tenant": message.tenant,
        "event_id": message.event_id or "",
        "metric_id": message.metric_id or "",
    }
    structured = (
        "[" + SD_ID + "".join(f' {k}="{escape_param(single_line(v))}"' for k, v in params.items() if v) + "]"
    )
    head = f"{header} {structured} {BOM}".encode()
    room = MAX_MESSAGE_BYTES - len(head)
    body = single_line(message.summary).encode()[: max(room, 0)].decode("utf-8", errors="ignore")
    return head + body.encode()


def escape_param(value: str) -> str:
    """An SD-PARAM value with `"`, `\\` and `]` escaped by a backslash (RFC 5424 section 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def frame_octet_counting(payload: bytes) -> bytes:
    """RFC 6587 section 3.4.1 framing (also RFC 5425's): `MSG-LEN SP SYSLOG-MSG`."""
    return str(len(payload)).encode() + b" " + payload


def _header_field(value: str, limit: int) -> str:
    """Header fields are 1..limit printable US-ASCII characters without spaces, or "-" (nil)."""
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in value)[:limit]
    return cleaned or "-"


# --- delivery -------------------------------------------------------------------------------------


class SyslogSender:
    """Sends each alert to every server of the config; one failing server does not stop the others,
    and the error names each server that failed."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.settings = SyslogSettings.from_config(config)

    async def send(self, message: AlertMessage) -> None:
        payload = format_message(message, facility=self.settings.facility, hostname=self.settings.hostname)
        failures: list[str] = []
        for server in self.settings.servers:
            try:
                await self._send_to(server, payload)
            except DeliveryError as exc:
                failures.append(exc.message)
        if failures:
            raise DeliveryError("syslog: " + "; ".join(failures))
        log.debug("alert %s sent to %d syslog server(s)", message.alert_uuid, len(self.settings.servers))

    async def _send_to(self, server: SyslogServer, payload: bytes) -> None:
        try:
            if server.transport is Transport.UDP:
                await _send_udp(server, payload)
            else:
                context = (
                    client_context(server.ca_pem, server.verify)
                    if server.transport is Transport.TLS
                    else None
                )
                await asyncio.wait_for(
                    _send_stream(server, frame_octet_counting(payload), context), self.settings.timeout_s
                )
        except InvalidActionConfig as exc:
            raise DeliveryError(f"{server.label}: {exc.message}") from None
        except TimeoutError:
            raise DeliveryError(f"{server.label}: timed out after {self.settings.timeout_s:g} s") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"{server.label}: {describe_tls_error(exc)}") from None
        except OSError as exc:
            raise DeliveryError(f"{server.label}: {os_error_reason(exc)}") from None


async def _send_udp(server: SyslogServer, payload: bytes) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(server.host, server.port)
    )
    try:
        transport.sendto(payload)
    finally:
        transport.close()


async def _send_stream(server: SyslogServer, frame: bytes, context: ssl.SSLContext | None) -> None:
    server_hostname = (server.tls_server_name or server.host) if context else None
    _, writer = await asyncio.open_connection(
        server.host, server.port, ssl=context, server_hostname=server_hostname
    )
    try:
        writer.write(frame)
        await writer.drain()
    finally:
        writer.close()
        # The message is out once drained; a receiver that drops the connection without a TLS
        # close_notify does not make the delivery fail.
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
