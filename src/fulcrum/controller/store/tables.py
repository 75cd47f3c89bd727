"""Table definitions. Config objects are JSON documents; references get their own table for integrity."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

objects = Table(
    "objects",
    metadata,
    Column("uuid", String(80), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("tenant_uuid", String(80), nullable=False),
    Column("name", String(255), nullable=False),
    Column("data", JSON, nullable=False),
    # Write-only fields (private keys, passwords) as one Fernet token; never leaves the service layer.
    Column("secrets", Text, nullable=True),
    # builtin: read-only system object; protected: editable but never deletable (Default-Cloud ...).
    Column("flags", String(64), nullable=False, default=""),
    # Owner of an object the controller created on someone's behalf (a VS's inline vsvip).
    Column("owner_uuid", String(80), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("last_modified", BigInteger, nullable=False),
    UniqueConstraint("type", "tenant_uuid", "name", name="uq_objects_type_tenant_name"),
    Index("ix_objects_tenant_type", "tenant_uuid", "type"),
)

refs = Table(
    "refs",
    metadata,
    Column("src_uuid", String(80), ForeignKey("objects.uuid", ondelete="CASCADE"), primary_key=True),
    Column("field", String(128), primary_key=True),
    Column("dst_uuid", String(80), ForeignKey("objects.uuid"), primary_key=True),
    Index("ix_refs_dst", "dst_uuid"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uuid", String(80), nullable=False, unique=True),
    Column("event_id", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("tenant_uuid", String(80), nullable=True),
    Column("obj_type", String(64), nullable=True),
    Column("obj_uuid", String(80), nullable=True),
    Column("obj_name", String(255), nullable=True),
    Column("user_name", String(255), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("details", JSON, nullable=False),
    Index("ix_events_ts", "ts"),
    Index("ix_events_obj", "obj_uuid"),
    Index("ix_events_tenant_ts", "tenant_uuid", "ts"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_uuid", String(80), ForeignKey("objects.uuid", ondelete="CASCADE"), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),
    Index("ix_tokens_user", "user_uuid"),
)

placements = Table(
    "placements",
    metadata,
    Column("vs_uuid", String(80), primary_key=True),
    Column("se_uuid", String(80), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("created", BigInteger, nullable=False),
    Index("ix_placements_se", "se_uuid"),
)

# Alerts (see migration 0004); `data` holds the JSON of everything else an alert shows.
alerts = Table(
    "alerts",
    metadata,
    Column("uuid", String(80), primary_key=True),
    Column("tenant_uuid", String(80), nullable=False),
    Column("config_uuid", String(80), nullable=False),
    Column("obj_key", String(80), nullable=False),
    Column("state", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("raised_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_alerts_config_obj", "config_uuid", "obj_key"),
    Index("ix_alerts_tenant_raised", "tenant_uuid", "raised_at"),
)

# Scale-out state per virtual service (see migration 0003).
vs_scale = Table(
    "vs_scale",
    metadata,
    Column("vs_uuid", String(80), primary_key=True),
    Column("extra", Integer, nullable=False),
    Column("new_se", Boolean, nullable=False),
    Column("worker_port_offset", Integer, nullable=True),
    Column("updated", BigInteger, nullable=False),
)

# Octavia-API facts the native model has no field for, keyed by native uuid (or `member:<id>`,
# `flavor:<id>`, `flavorprofile:<id>`, `quota:<tenant>`).
octavia_meta = Table(
    "octavia_meta",
    metadata,
    Column("key", String(120), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("tenant_uuid", String(80), nullable=False),
    Column("lb_uuid", String(80), nullable=True),
    Column("data", JSON, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Index("ix_octavia_meta_kind", "kind"),
)
