"""Alerts as SNMP notifications (SNMPv2-Trap PDUs), v2c with a community or v3 with a USM user.

The config dict is an Avi `snmptrapprofile`'s data, with the community and passphrases decrypted:

    {
      "engine_id": "80007ed904...",     # optional, hex; the sender's snmpEngineID for v3 (see below)
      "trap_servers": [
        {"ip_addr": "10.0.0.9", "port": 162, "version": "SNMP_VER2", "community": "..."},   # SECRET
        {"ip_addr": {"addr": "10.0.0.9", "type": "V4"}, "version": "SNMP_VER3",
         "user": {"username": "fulcrum",
                  "auth_type": "SNMP_V3_AUTH_SHA", "auth_passphrase": "...",                 # SECRET
                  "priv_type": "SNMP_V3_PRIV_AES", "priv_passphrase": "..."}}                # SECRET
      ]
    }

`ip_addr` is a string or Avi's `{"addr": ...}`; `port` defaults to 162. v3 auth types are
SNMP_V3_AUTH_MD5, _SHA (default), _SHA_224, _SHA_256, _SHA_384 and _SHA_512; priv types are
SNMP_V3_PRIV_AES (AES-128, default) and SNMP_V3_PRIV_NONE (authNoPriv). DES is refused. Passphrases
have at least 8 characters (RFC 3414).

For a v3 trap the sender is the authoritative engine, so the receiver must know the user under the
sender's engine id (`createUser -e <engine_id> ...` in snmptrapd). Without `engine_id` it is
`DEFAULT_ENGINE_ID_PREFIX` + the host name. A receiver drops a trap whose snmpEngineBoots is lower than
one it has seen from the same engine id, and each send uses a fresh engine whose clock starts at zero;
so snmpEngineBoots is the number of seconds since 2024-01-01 UTC, which only grows (unless the clock
is set back).

OIDs live under 1.3.6.1.4.1.32473, the private enterprise number RFC 5612 reserves for documentation
and examples: it is not registered to Fulcrum, and a deployment that needs its own should change
`ENTERPRISE`. `VARBINDS` lists the objects sent after sysUpTime.0 and snmpTrapOID.0 (= `ALERT_TRAP`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CFB128_AES,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    Integer32,
    NotificationType,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
)

from fulcrum.controller.services.clock import Clock, SystemClock
from fulcrum.controller.services.notify import config as cfg
from fulcrum.controller.services.notify.message import (
    AlertLevel,
    AlertMessage,
    DeliveryError,
    InvalidActionConfig,
    single_line,
)

log = logging.getLogger(__name__)

SECRET_KEYS = ("community", "user.auth_passphrase", "user.priv_passphrase")  # per trap_servers[] item

ENTERPRISE = "1.3.6.1.4.1.32473"
FULCRUM = f"{ENTERPRISE}.1"
ALERT_TRAP = f"{FULCRUM}.0.1"  # fulcrumAlert NOTIFICATION-TYPE
_OBJECTS = f"{FULCRUM}.1"
VARBINDS = {  # name -> scalar instance OID (object OID + ".0")
    "fulcrumAlertUuid": f"{_OBJECTS}.1.0",
    "fulcrumAlertName": f"{_OBJECTS}.2.0",
    "fulcrumAlertLevel": f"{_OBJECTS}.3.0",  # INTEGER low(1), medium(2), high(3)
    "fulcrumAlertObjectType": f"{_OBJECTS}.4.0",
    "fulcrumAlertObjectName": f"{_OBJECTS}.5.0",
    "fulcrumAlertObjectUuid": f"{_OBJECTS}.6.0",
    "fulcrumAlertTenant": f"{_OBJECTS}.7.0",
    "fulcrumAlertEventId": f"{_OBJECTS}.8.0",
    "fulcrumAlertMetricId": f"{_OBJECTS}.9.0",
    "fulcrumAlertSummary": f"{_OBJECTS}.10.0",
    "fulcrumAlertTime": f"{_OBJECTS}.11.0",  # RFC 3339 UTC text
}
LEVEL_NUMBER = {AlertLevel.LOW: 1, AlertLevel.MEDIUM: 2, AlertLevel.HIGH: 3}
MAX_TEXT_BYTES = 1024  # keeps one trap within a single unfragmented UDP datagram in practice

DEFAULT_ENGINE_ID_PREFIX = bytes.fromhex("80007ed904")  # RFC 3411: enterprise 32473, format 4 (text)
BOOTS_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
MAX_BOOTS = 2_147_483_646

AUTH_TYPES = {
    "SNMP_V3_AUTH_MD5": USM_AUTH_HMAC96_MD5,
    "SNMP_V3_AUTH_SHA": USM_AUTH_HMAC96_SHA,
    "SNMP_V3_AUTH_SHA_224": USM_AUTH_HMAC128_SHA224,
    "SNMP_V3_AUTH_SHA_256": USM_AUTH_HMAC192_SHA256,
    "SNMP_V3_AUTH_SHA_384": USM_AUTH_HMAC256_SHA384,
    "SNMP_V3_AUTH_SHA_512": USM_AUTH_HMAC384_SHA512,
}
PRIV_TYPES = {"SNMP_V3_PRIV_AES": USM_PRIV_CFB128_AES, "SNMP_V3_PRIV_NONE": USM_PRIV_NONE}


@dataclass(frozen=True)
class UsmUser:
    username: str
    auth_type: str
    auth_passphrase: str
    priv_type: str
    priv_passphrase: str | None


@dataclass(frozen=True)
class TrapServer:
    host: str
    port: int
    version: str  # SNMP_VER2 | SNMP_VER3
    community: str | None = None
    user: UsmUser | None = None

    @property
    def label(self) -> str:
        return f"snmp://{self.host}:{self.port}"


@dataclass(frozen=True)
class SnmpSettings:
    servers: tuple[TrapServer, ...]
    engine_id: bytes

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SnmpSettings:
        raw_servers = config.get("trap_servers")
        if not isinstance(raw_servers, list) or not raw_servers:
            raise InvalidActionConfig("trap_servers must be a non-empty list")
        servers = tuple(_server(item, f"trap_servers[{i}].") for i, item in enumerate(raw_servers))
        return cls(servers=servers, engine_id=_engine_id(cfg.optional_text(config, "engine_id")))


def default_engine_id() -> bytes:
    return DEFAULT_ENGINE_ID_PREFIX + socket.gethostname().encode()[:27]


def _engine_id(value: str | None) -> bytes:
    if value is None:
        return default_engine_id()
    try:
        engine_id = bytes.fromhex(value.removeprefix("0x").removeprefix("0X"))
    except ValueError:
        raise InvalidActionConfig("engine_id must be hexadecimal") from None
    if not 5 <= len(engine_id) <= 32:
        raise InvalidActionConfig("engine_id must be 5 to 32 octets")
    return engine_id


def _server(item: object, where: str) -> TrapServer:
    if not isinstance(item, Mapping):
        raise InvalidActionConfig(f"{where[:-1]} must be an object")
    address = item.get("ip_addr")
    if isinstance(address, Mapping):
        address = address.get("addr")
    if not isinstance(address, str) or not address:
        raise InvalidActionConfig(f"{where}ip_addr is required (an address or {{'addr': ...}})")
    version = cfg.choice(item, "version", "SNMP_VER2", ("SNMP_VER2", "SNMP_VER3"), where=where)
    port = cfg.integer(item, "port", 162, low=1, high=65535, where=where)
    if version == "SNMP_VER2":
        return TrapServer(address, port, version, community=cfg.text(item, "community", where=where))
    return TrapServer(
        address, port, version, user=_user(cfg.mapping(item, "user", where=where), f"{where}user.")
    )


def _user(raw: Mapping[str, Any], where: str) -> UsmUser:
    auth_type = cfg.choice(raw, "auth_type", "SNMP_V3_AUTH_SHA", tuple(AUTH_TYPES), where=where)
    priv_type = cfg.choice(raw, "priv_type", "SNMP_V3_PRIV_AES", tuple(PRIV_TYPES), where=where)
    auth_passphrase = _passphrase(raw, "auth_passphrase", where)
    priv_passphrase = _passphrase(raw, "priv_passphrase", where) if priv_type != "SNMP_V3_PRIV_NONE" else None
    return UsmUser(
        cfg.text(raw, "username", where=where), auth_type, auth_passphrase, priv_type, priv_passphrase
    )


def _passphrase(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = cfg.text(raw, key, where=where)
    if len(value) < 8:
        raise InvalidActionConfig(f"{where}{key} must have at least 8 characters")
    return value


# --- the notification (pure) ----------------------------------------------------------------------


def varbind_values(message: AlertMessage) -> dict[str, OctetString | Integer32]:
    """The value of each `VARBINDS` object for `message`; text is one line of UTF-8, cut to
    `MAX_TEXT_BYTES`."""

    def text(value: str | None) -> OctetString:
        return OctetString(single_line(value or "").encode()[:MAX_TEXT_BYTES])

    return {
        "fulcrumAlertUuid": text(message.alert_uuid),
        "fulcrumAlertName": text(message.name),
        "fulcrumAlertLevel": Integer32(LEVEL_NUMBER[message.level]),
        "fulcrumAlertObjectType": text(message.obj_type),
        "fulcrumAlertObjectName": text(message.obj_name),
        "fulcrumAlertObjectUuid": text(message.obj_uuid),
        "fulcrumAlertTenant": text(message.tenant),
        "fulcrumAlertEventId": text(message.event_id),
        "fulcrumAlertMetricId": text(message.metric_id),
        "fulcrumAlertSummary": text(message.summary),
        "fulcrumAlertTime": text(message.iso_time()),
    }


def engine_boots(now: float) -> int:
    return min(max(int(now) - BOOTS_EPOCH, 1), MAX_BOOTS)


# --- delivery -------------------------------------------------------------------------------------


class SnmpTrapSender:
    """Sends each alert as a trap to every server of the profile. Traps are unacknowledged: a
    DeliveryError means the trap could not be built or sent, never that a receiver rejected it."""

    def __init__(self, config: Mapping[str, Any], clock: Clock | None = None) -> None:
        self.settings = SnmpSettings.from_config(config)
        self.clock = clock or SystemClock()

    async def send(self, message: AlertMessage) -> None:
        values = varbind_values(message)
        failures: list[str] = []
        for server in self.settings.servers:
            try:
                await self._send_to(server, values)
            except DeliveryError as exc:
                failures.append(exc.message)
        if failures:
            raise DeliveryError("snmp: " + "; ".join(failures))
        log.debug("alert %s trapped to %d receiver(s)", message.alert_uuid, len(self.settings.servers))

    async def _send_to(self, server: TrapServer, values: Mapping[str, OctetString | Integer32]) -> None:
        # A fresh notification per engine: pysnmp resolves it against the engine's own MIB view.
        notification = NotificationType(ObjectIdentity(ALERT_TRAP)).add_varbinds(
            *(ObjectType(ObjectIdentity(VARBINDS[name]), value) for name, value in values.items())
        )
        engine = self._engine()
        try:
            target = await UdpTransportTarget.create((server.host, server.port), timeout=2, retries=0)
            error_indication, _, _, _ = await send_notification(
                engine, _credentials(server), target, ContextData(), "trap", notification
            )
        except DeliveryError:
            raise
        except Exception as exc:
            # pysnmp reports resolution, encoding and key errors as assorted exceptions whose text can
            # include the credentials it was given; only the class name is kept.
            raise DeliveryError(f"{server.label}: {exc.__class__.__name__}") from None
        finally:
            engine.close_dispatcher()
        if error_indication:
            raise DeliveryError(f"{server.label}: {error_indication}")

    def _engine(self) -> SnmpEngine:
        # The engine id and boots are set after construction: given an id, the constructor would keep
        # its own boots counter in a file under the temp dir.
        engine = SnmpEngine()
        engine_id, boots = engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineID", "snmpEngineBoots"
        )
        engine_id.syntax = engine_id.syntax.clone(self.settings.engine_id)
        engine.snmpEngineID = engine_id.syntax
        boots.syntax = boots.syntax.clone(engine_boots(self.clock.now()))
        return engine


def _credentials(server: TrapServer) -> CommunityData | UsmUserData:
    if server.user is None:
        return CommunityData(server.community or "", mpModel=1)  # noqa: S508 - v2c is what the profile asks for
    user = server.user
    return UsmUserData(
        user.username,
        user.auth_passphrase,
        user.priv_passphrase,
        authProtocol=AUTH_TYPES[user.auth_type],
        privProtocol=PRIV_TYPES[user.priv_type],
    )
