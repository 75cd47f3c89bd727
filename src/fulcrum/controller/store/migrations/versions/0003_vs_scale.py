"""Scale-out state of virtual services: SEs asked for beyond the group's minimum, and the port offset of
the worker frontends when a VS runs on several SEs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vs_scale",
        sa.Column("vs_uuid", sa.String(80), primary_key=True),
        sa.Column("extra", sa.Integer, nullable=False),
        sa.Column("new_se", sa.Boolean, nullable=False),
        sa.Column("worker_port_offset", sa.Integer, nullable=True),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vs_scale")
