"""Initial schema: objects, references, events, tokens.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("uuid", sa.String(80), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("tenant_uuid", sa.String(80), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("secrets", sa.Text, nullable=True),
        sa.Column("flags", sa.String(64), nullable=False),
        sa.Column("owner_uuid", sa.String(80), nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("last_modified", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("type", "tenant_uuid", "name", name="uq_objects_type_tenant_name"),
    )
    op.create_index("ix_objects_tenant_type", "objects", ["tenant_uuid", "type"])
    op.create_table(
        "refs",
        sa.Column(
            "src_uuid", sa.String(80), sa.ForeignKey("objects.uuid", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("field", sa.String(128), primary_key=True),
        sa.Column("dst_uuid", sa.String(80), sa.ForeignKey("objects.uuid"), primary_key=True),
    )
    op.create_index("ix_refs_dst", "refs", ["dst_uuid"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(80), nullable=False, unique=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("tenant_uuid", sa.String(80), nullable=True),
        sa.Column("obj_type", sa.String(64), nullable=True),
        sa.Column("obj_uuid", sa.String(80), nullable=True),
        sa.Column("obj_name", sa.String(255), nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_obj", "events", ["obj_uuid"])
    op.create_index("ix_events_tenant_ts", "events", ["tenant_uuid", "ts"])
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_uuid", sa.String(80), sa.ForeignKey("objects.uuid", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tokens_user", "tokens", ["user_uuid"])


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("events")
    op.drop_table("refs")
    op.drop_table("objects")
