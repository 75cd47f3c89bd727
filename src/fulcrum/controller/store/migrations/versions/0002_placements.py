"""Placements: which Service Engine hosts which virtual service, and in what role.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("vs_uuid", sa.String(80), primary_key=True),
        sa.Column("se_uuid", sa.String(80), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_placements_se", "placements", ["se_uuid"])


def downgrade() -> None:
    op.drop_table("placements")
