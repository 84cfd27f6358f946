"""Provenance: each step run's source (an inline artifact by hash); environments by hash.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("source_key", sa.String(64), nullable=True))
    op.create_table(
        "environments",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("packages", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("environments")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("source_key")
