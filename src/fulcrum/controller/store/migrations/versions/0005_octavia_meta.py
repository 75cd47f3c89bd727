"""What the Octavia-compatible API knows beyond the native model: display names, descriptions, tags,
the load balancer a pool belongs to, listener protocols, flavors, and each resource's timestamps.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "octavia_meta",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant_uuid", sa.String(80), nullable=False),
        sa.Column("lb_uuid", sa.String(80), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_octavia_meta_kind", "octavia_meta", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_octavia_meta_kind", "octavia_meta")
    op.drop_table("octavia_meta")
