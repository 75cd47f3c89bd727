"""Queries over the tables. Functions take an open connection so callers decide the transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, or_, select, update

from fulcrum.controller.store.tables import (
    alerts,
    events,
    objects,
    octavia_meta,
    placements,
    refs,
    tokens,
    vs_scale,
)


@dataclass
class StoredObject:
    uuid: str
    type: str
    tenant_uuid: str
    name: str
    data: dict[str, Any]
    secrets: str | None = None
    flags: str = ""
    owner_uuid: str | None = None
    created: int = 0
    last_modified: int = 0

    @property
    def builtin(self) -> bool:
        return "builtin" in self.flags.split(",")

    @property
    def protected(self) -> bool:
        return self.builtin or "protected" in self.flags.split(",")


@dataclass(frozen=True)
class Referrer:
    uuid: str
    type: str
    name: str
    field: str


@dataclass(frozen=True)
class ListQuery:
    """Filters of a collection GET, already checked by the API layer."""

    type: str
    visible: ColumnElement[bool] | None = None
    name: str | None = None
    sort: str = "name"
    descending: bool = False
    offset: int = 0
    limit: int = 25
    uuids: Sequence[str] | None = field(default=None)


_SORT_COLUMNS = {"name": objects.c.name, "uuid": objects.c.uuid, "_last_modified": objects.c.last_modified}
SORT_FIELDS = tuple(_SORT_COLUMNS)


def _row_to_object(row: Any) -> StoredObject:
    return StoredObject(
        uuid=row.uuid,
        type=row.type,
        tenant_uuid=row.tenant_uuid,
        name=row.name,
        data=row.data,
        secrets=row.secrets,
        flags=row.flags,
        owner_uuid=row.owner_uuid,
        created=row.created,
        last_modified=row.last_modified,
    )


def visible_in(tenant_uuid: str, admin_tenant_uuid: str, shared_types: Iterable[str]) -> ColumnElement[bool]:
    """Rows a caller in `tenant_uuid` may see: its own, plus shared and built-in admin objects."""
    return or_(
        objects.c.tenant_uuid == tenant_uuid,
        and_(
            objects.c.tenant_uuid == admin_tenant_uuid,
            or_(objects.c.type.in_(list(shared_types)), objects.c.flags.contains("builtin")),
        ),
    )


def get(conn: Connection, uuid: str) -> StoredObject | None:
    row = conn.execute(select(objects).where(objects.c.uuid == uuid)).first()
    return _row_to_object(row) if row else None


def find_by_name(conn: Connection, type_: str, name: str, tenant_uuids: Sequence[str]) -> StoredObject | None:
    """The object named `name` in the first of `tenant_uuids` that has one (own tenant before admin)."""
    rows = conn.execute(
        select(objects).where(
            objects.c.type == type_, objects.c.name == name, objects.c.tenant_uuid.in_(list(tenant_uuids))
        )
    ).all()
    by_tenant = {row.tenant_uuid: row for row in rows}
    for tenant in tenant_uuids:
        if tenant in by_tenant:
            return _row_to_object(by_tenant[tenant])
    return None


def list_objects(conn: Connection, query: ListQuery) -> tuple[int, list[StoredObject]]:
    conditions: list[ColumnElement[bool]] = [objects.c.type == query.type]
    if query.visible is not None:
        conditions.append(query.visible)
    if query.name is not None:
        conditions.append(objects.c.name == query.name)
    if query.uuids is not None:
        conditions.append(objects.c.uuid.in_(list(query.uuids)))
    total = conn.execute(select(func.count()).select_from(objects).where(*conditions)).scalar_one()
    column = _SORT_COLUMNS[query.sort]
    order = column.desc() if query.descending else column.asc()
    rows = conn.execute(
        select(objects)
        .where(*conditions)
        .order_by(order, objects.c.uuid)
        .offset(query.offset)
        .limit(query.limit)
    ).all()
    return total, [_row_to_object(r) for r in rows]


def all_of_type(conn: Connection, type_: str) -> list[StoredObject]:
    rows = conn.execute(select(objects).where(objects.c.type == type_).order_by(objects.c.name)).all()
    return [_row_to_object(r) for r in rows]


def count_in_tenant(conn: Connection, tenant_uuid: str) -> dict[str, int]:
    rows = conn.execute(
        select(objects.c.type, func.count())
        .where(objects.c.tenant_uuid == tenant_uuid)
        .group_by(objects.c.type)
    ).all()
    return {row[0]: row[1] for row in rows}


def insert_object(conn: Connection, obj: StoredObject) -> None:
    conn.execute(
        insert(objects).values(
            uuid=obj.uuid,
            type=obj.type,
            tenant_uuid=obj.tenant_uuid,
            name=obj.name,
            data=obj.data,
            secrets=obj.secrets,
            flags=obj.flags,
            owner_uuid=obj.owner_uuid,
            created=obj.created,
            last_modified=obj.last_modified,
        )
    )


def update_object(conn: Connection, obj: StoredObject) -> None:
    conn.execute(
        update(objects)
        .where(objects.c.uuid == obj.uuid)
        .values(
            name=obj.name,
            data=obj.data,
            secrets=obj.secrets,
            flags=obj.flags,
            owner_uuid=obj.owner_uuid,
            last_modified=obj.last_modified,
        )
    )


def delete_object(conn: Connection, uuid: str) -> None:
    conn.execute(delete(refs).where(refs.c.src_uuid == uuid))
    conn.execute(delete(tokens).where(tokens.c.user_uuid == uuid))
    conn.execute(delete(objects).where(objects.c.uuid == uuid))


def name_taken(conn: Connection, type_: str, tenant_uuid: str, name: str, except_uuid: str | None) -> bool:
    query = select(objects.c.uuid).where(
        objects.c.type == type_, objects.c.tenant_uuid == tenant_uuid, objects.c.name == name
    )
    if except_uuid:
        query = query.where(objects.c.uuid != except_uuid)
    return conn.execute(query).first() is not None


def set_refs(conn: Connection, src_uuid: str, edges: Iterable[tuple[str, str]]) -> None:
    """Replace the outgoing references of `src_uuid` with `edges` (field label, target uuid)."""
    conn.execute(delete(refs).where(refs.c.src_uuid == src_uuid))
    unique = sorted(set(edges))
    if unique:
        conn.execute(insert(refs), [{"src_uuid": src_uuid, "field": f, "dst_uuid": d} for f, d in unique])


def referrers(conn: Connection, dst_uuid: str) -> list[Referrer]:
    rows = conn.execute(
        select(objects.c.uuid, objects.c.type, objects.c.name, refs.c.field)
        .join(objects, objects.c.uuid == refs.c.src_uuid)
        .where(refs.c.dst_uuid == dst_uuid)
        .order_by(objects.c.type, objects.c.name)
    ).all()
    return [Referrer(r.uuid, r.type, r.name, r.field) for r in rows]


def owned_by(conn: Connection, owner_uuid: str) -> list[StoredObject]:
    rows = conn.execute(select(objects).where(objects.c.owner_uuid == owner_uuid)).all()
    return [_row_to_object(r) for r in rows]


# --- events ---------------------------------------------------------------------------------------


def insert_event(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(events).values(**values))


def list_events(
    conn: Connection, conditions: list[ColumnElement[bool]], offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    total = conn.execute(select(func.count()).select_from(events).where(*conditions)).scalar_one()
    rows = conn.execute(
        select(events)
        .where(*conditions)
        .order_by(events.c.ts.desc(), events.c.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return total, [dict(r._mapping) for r in rows]


# --- tokens ---------------------------------------------------------------------------------------


def insert_token(conn: Connection, token_hash: str, user_uuid: str, created: int, expires: int) -> None:
    conn.execute(
        insert(tokens).values(token_hash=token_hash, user_uuid=user_uuid, created=created, expires=expires)
    )


def token_user(conn: Connection, token_hash: str, now: int) -> str | None:
    row = conn.execute(
        select(tokens.c.user_uuid).where(tokens.c.token_hash == token_hash, tokens.c.expires > now)
    ).first()
    return row.user_uuid if row else None


def delete_token(conn: Connection, token_hash: str) -> bool:
    return conn.execute(delete(tokens).where(tokens.c.token_hash == token_hash)).rowcount > 0


def delete_user_tokens(conn: Connection, user_uuid: str) -> None:
    conn.execute(delete(tokens).where(tokens.c.user_uuid == user_uuid))


def purge_expired_tokens(conn: Connection, now: int) -> None:
    conn.execute(delete(tokens).where(tokens.c.expires <= now))


# --- placements -----------------------------------------------------------------------------------


def all_placements(conn: Connection) -> list[tuple[str, str, str]]:
    """(vs uuid, se uuid, role) for every placement."""
    rows = conn.execute(select(placements.c.vs_uuid, placements.c.se_uuid, placements.c.role)).all()
    return [(r.vs_uuid, r.se_uuid, r.role) for r in rows]


def set_placements(conn: Connection, wanted: Iterable[tuple[str, str, str]], now: int) -> None:
    """Make the placements table hold exactly `wanted`, touching only rows that change."""
    target = set(wanted)
    current = set(all_placements(conn))
    for vs_uuid, se_uuid, _role in current - target:
        conn.execute(
            delete(placements).where(placements.c.vs_uuid == vs_uuid, placements.c.se_uuid == se_uuid)
        )
    for vs_uuid, se_uuid, role in target - current:
        conn.execute(
            delete(placements).where(placements.c.vs_uuid == vs_uuid, placements.c.se_uuid == se_uuid)
        )
        conn.execute(insert(placements).values(vs_uuid=vs_uuid, se_uuid=se_uuid, role=role, created=now))


@dataclass
class VsScale:
    vs_uuid: str
    extra: int = 0
    new_se: bool = False
    worker_port_offset: int | None = None


def all_vs_scale(conn: Connection) -> dict[str, VsScale]:
    rows = conn.execute(select(vs_scale)).all()
    return {r.vs_uuid: VsScale(r.vs_uuid, r.extra, bool(r.new_se), r.worker_port_offset) for r in rows}


def put_vs_scale(conn: Connection, scale: VsScale, now: int) -> None:
    conn.execute(delete(vs_scale).where(vs_scale.c.vs_uuid == scale.vs_uuid))
    conn.execute(
        insert(vs_scale).values(
            vs_uuid=scale.vs_uuid,
            extra=scale.extra,
            new_se=scale.new_se,
            worker_port_offset=scale.worker_port_offset,
            updated=now,
        )
    )


def delete_vs_scale(conn: Connection, vs_uuids: Iterable[str]) -> None:
    for vs_uuid in vs_uuids:
        conn.execute(delete(vs_scale).where(vs_scale.c.vs_uuid == vs_uuid))


def set_secrets(conn: Connection, uuid: str, sealed: str | None) -> None:
    conn.execute(update(objects).where(objects.c.uuid == uuid).values(secrets=sealed))


# --- alerts ---------------------------------------------------------------------------------------


@dataclass
class AlertRow:
    uuid: str
    tenant_uuid: str
    config_uuid: str
    obj_key: str
    state: str
    level: str
    raised_at: int
    last_seen: int
    data: dict[str, Any]


def _alert(row: Any) -> AlertRow:
    return AlertRow(
        row.uuid, row.tenant_uuid, row.config_uuid, row.obj_key, row.state, row.level,
        row.raised_at, row.last_seen, json.loads(row.data),
    )  # fmt: skip


def put_alert(conn: Connection, alert: AlertRow) -> None:
    conn.execute(delete(alerts).where(alerts.c.uuid == alert.uuid))
    conn.execute(
        insert(alerts).values(
            uuid=alert.uuid, tenant_uuid=alert.tenant_uuid, config_uuid=alert.config_uuid,
            obj_key=alert.obj_key, state=alert.state, level=alert.level, raised_at=alert.raised_at,
            last_seen=alert.last_seen, data=json.dumps(alert.data, sort_keys=True),
        )
    )  # fmt: skip


def get_alert(conn: Connection, uuid: str) -> AlertRow | None:
    row = conn.execute(select(alerts).where(alerts.c.uuid == uuid)).first()
    return _alert(row) if row else None


def open_alert(conn: Connection, config_uuid: str, obj_key: str) -> AlertRow | None:
    """The newest alert of this config and object that is not cleared."""
    row = conn.execute(
        select(alerts)
        .where(alerts.c.config_uuid == config_uuid, alerts.c.obj_key == obj_key, alerts.c.state != "CLEARED")
        .order_by(alerts.c.raised_at.desc())
    ).first()
    return _alert(row) if row else None


def open_alerts(conn: Connection) -> list[AlertRow]:
    return [_alert(r) for r in conn.execute(select(alerts).where(alerts.c.state != "CLEARED")).all()]


def list_alerts(
    conn: Connection, tenant_uuids: list[str] | None, state: str | None, offset: int, limit: int
) -> tuple[int, list[AlertRow]]:
    conditions: list[ColumnElement[bool]] = []
    if tenant_uuids is not None:
        conditions.append(alerts.c.tenant_uuid.in_(tenant_uuids))
    if state is not None:
        conditions.append(alerts.c.state == state)
    where = and_(*conditions) if conditions else None
    count_query = select(func.count()).select_from(alerts)
    query = select(alerts).order_by(alerts.c.raised_at.desc()).offset(offset).limit(limit)
    if where is not None:
        count_query, query = count_query.where(where), query.where(where)
    total = conn.execute(count_query).scalar_one()
    return int(total), [_alert(r) for r in conn.execute(query).all()]


# --- Octavia side facts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaRow:
    key: str
    kind: str
    tenant_uuid: str
    lb_uuid: str | None
    data: dict[str, Any]
    created: int
    updated: int


def _meta(row: Any) -> MetaRow:
    return MetaRow(row.key, row.kind, row.tenant_uuid, row.lb_uuid, dict(row.data), row.created, row.updated)


def get_meta(conn: Connection, key: str) -> MetaRow | None:
    row = conn.execute(select(octavia_meta).where(octavia_meta.c.key == key)).first()
    return _meta(row) if row else None


def metas_of_kind(conn: Connection, kind: str) -> list[MetaRow]:
    return [_meta(r) for r in conn.execute(select(octavia_meta).where(octavia_meta.c.kind == kind)).all()]


def all_metas(conn: Connection) -> dict[str, MetaRow]:
    return {r.key: _meta(r) for r in conn.execute(select(octavia_meta)).all()}


def put_meta(conn: Connection, row: MetaRow) -> None:
    conn.execute(delete(octavia_meta).where(octavia_meta.c.key == row.key))
    conn.execute(
        insert(octavia_meta).values(
            key=row.key, kind=row.kind, tenant_uuid=row.tenant_uuid, lb_uuid=row.lb_uuid,
            data=row.data, created=row.created, updated=row.updated,
        )
    )  # fmt: skip


def delete_meta(conn: Connection, keys: Iterable[str]) -> None:
    for key in keys:
        conn.execute(delete(octavia_meta).where(octavia_meta.c.key == key))
