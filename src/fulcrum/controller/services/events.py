"""Audit and system events: recorded inside the transaction of the change they describe."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection

from fulcrum.controller.services.clock import Clock, usec
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo
from fulcrum.controller.store.tables import events

CONFIG_CREATE = "CONFIG_CREATE"
CONFIG_UPDATE = "CONFIG_UPDATE"
CONFIG_DELETE = "CONFIG_DELETE"
USER_LOGIN = "USER_LOGIN"
USER_LOGIN_FAILED = "USER_LOGIN_FAILED"
USER_LOGOUT = "USER_LOGOUT"

REDACTED = "<redacted>"


@dataclass(frozen=True)
class EventFilter:
    obj_uuid: str | None = None
    event_id: str | None = None
    since_usec: int | None = None
    until_usec: int | None = None


def diff_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Top-level fields that changed, with old and new values."""
    changed = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changed[key] = {"old": old.get(key), "new": new.get(key)}
    return changed


class EventLog:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Called with every recorded event (inside its transaction: listeners must only queue it).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def record(
        self,
        conn: Connection,
        event_id: str,
        *,
        tenant_uuid: str | None,
        caller: Caller | None = None,
        user_name: str | None = None,
        source_ip: str | None = None,
        obj_type: str | None = None,
        obj_uuid: str | None = None,
        obj_name: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        record = {
            "uuid": f"event-{uuidlib.uuid4()}",
            "event_id": event_id,
            "ts": usec(self._clock),
            "tenant_uuid": tenant_uuid,
            "obj_type": obj_type,
            "obj_uuid": obj_uuid,
            "obj_name": obj_name,
            "user_name": (caller.user_name if caller else user_name or "")[:255],
            "source_ip": (caller.source_ip if caller else source_ip or "")[:64],
            "details": details or {},
        }
        repo.insert_event(conn, record)
        for listener in self.listeners:
            listener(record)

    def query(
        self, conn: Connection, tenant_uuids: list[str] | None, filters: EventFilter, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        conditions: list[ColumnElement[bool]] = []
        if tenant_uuids is not None:
            conditions.append(events.c.tenant_uuid.in_(tenant_uuids))
        if filters.obj_uuid:
            conditions.append(events.c.obj_uuid == filters.obj_uuid)
        if filters.event_id:
            conditions.append(events.c.event_id == filters.event_id)
        if filters.since_usec is not None:
            conditions.append(events.c.ts >= filters.since_usec)
        if filters.until_usec is not None:
            conditions.append(events.c.ts <= filters.until_usec)
        return repo.list_events(conn, conditions, offset, limit)
