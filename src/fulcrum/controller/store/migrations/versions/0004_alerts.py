"""Alerts: raised by alert configs, acknowledged by users, cleared by rule or by hand.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("uuid", sa.String(80), primary_key=True),
        sa.Column("tenant_uuid", sa.String(80), nullable=False),
        sa.Column("config_uuid", sa.String(80), nullable=False),
        sa.Column("obj_key", sa.String(80), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("raised_at", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_config_obj", "alerts", ["config_uuid", "obj_key"])
    op.create_index("ix_alerts_tenant_raised", "alerts", ["tenant_uuid", "raised_at"])


def downgrade() -> None:
    op.drop_table("alerts")
