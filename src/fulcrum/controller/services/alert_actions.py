"""From stored action objects to the senders in `notify`: secrets merged back in memory, fields mapped.

The stored objects follow the native API's shapes (Avi's names where they exist); the senders take plain
dicts. Secrets are decrypted by the caller and merged here only for the duration of one delivery.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from fulcrum.controller.services.notify.email import EmailSender
from fulcrum.controller.services.notify.message import AlertLevel, AlertMessage, DeliveryError
from fulcrum.controller.services.notify.snmp import SnmpTrapSender
from fulcrum.controller.services.notify.syslog import SyslogSender
from fulcrum.controller.services.notify.webhook import WebhookSender
from fulcrum.controller.store.repo import StoredObject

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def merge_secrets(data: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """`data` with each secret put back at its location label (`trap_servers[1].user.auth_passphrase`)."""
    merged = copy.deepcopy(data)
    for label, value in secrets.items():
        steps = [(m.group(1), m.group(2)) for m in _STEP.finditer(label)]
        node: Any = merged
        for i, (key, index) in enumerate(steps):
            last = i == len(steps) - 1
            if index is not None:
                position = int(index)
                if not isinstance(node, list) or position >= len(node):
                    break
                if last:
                    node[position] = value
                else:
                    node = node[position]
            else:
                if not isinstance(node, dict):
                    break
                if last:
                    node[key] = value
                else:
                    node = node.setdefault(key, {} if steps[i + 1][1] is None else [])
    return merged


def _syslog(data: dict[str, Any]) -> dict[str, Any]:
    servers = []
    for server in data["syslog_servers"]:
        protocol = "UDP" if server.get("udp", True) else ("TLS" if server.get("tls_enable") else "TCP")
        servers.append(
            {
                "syslog_server": server["syslog_server"],
                "syslog_server_port": server.get("syslog_server_port", 514),
                "protocol": protocol,
                "ca_pem": server.get("ca_pem"),
            }
        )
    return {"syslog_servers": servers}


def _snmp(data: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"trap_servers": data["trap_servers"]}
    engine_ids = [
        s["user"]["engine_id"] for s in data["trap_servers"] if (s.get("user") or {}).get("engine_id")
    ]
    if engine_ids:
        config["engine_id"] = engine_ids[0]
    return config


def _webhook(data: dict[str, Any]) -> dict[str, Any]:
    token = data.get("verification_token")
    config: dict[str, Any] = {
        "url": data["callback_url"],
        "format": "SPLUNK_HEC" if data.get("splunk_hec") else "JSON",
        "ca_pem": data.get("ca_pem"),
        "max_attempts": data.get("max_attempts", 4),
        "backoff_base_s": data.get("retry_base_s", 0.5),
        "timeout_s": data.get("timeout_s", 5.0),
    }
    if data.get("splunk_hec"):
        config["splunk_token"] = token
    elif token:
        config["headers"] = {"Authorization": f"Bearer {token}"}
    return {k: v for k, v in config.items() if v is not None}


def message_of(alert: dict[str, Any], tenant_name: str = "") -> AlertMessage:
    details = alert.get("details") or {}
    metrics = details.get("metrics") or {}
    return AlertMessage(
        alert_uuid=alert["uuid"],
        name=alert.get("name") or "",
        level=AlertLevel(alert["level"]),
        summary=alert.get("summary") or "",
        timestamp=alert["raised_ts"],
        event_id=details.get("event_id"),
        metric_id=next(iter(metrics), None),
        obj_type=alert.get("obj_type") or "",
        obj_name=alert.get("obj_name") or "",
        obj_uuid=(alert.get("obj_ref") or "").rsplit("/", 1)[-1],
        tenant=tenant_name,
        details=details,
    )


def deliver(kind: str, target: StoredObject, secrets: dict[str, Any], alert: dict[str, Any]) -> None:
    """Send `alert` (the API view of an alert) through one action object; raises DeliveryError."""
    data = merge_secrets(target.data, secrets)
    message = message_of(alert)
    if kind == "syslog":
        sender: Any = SyslogSender(_syslog(data))
    elif kind == "email":
        sender = EmailSender(data)
    elif kind == "snmp_trap":
        sender = SnmpTrapSender(_snmp(data))
    elif kind == "webhook":
        sender = WebhookSender(_webhook(data))
    else:
        raise DeliveryError(f"unknown action type {kind}")
    asyncio.run(sender.send(message))
