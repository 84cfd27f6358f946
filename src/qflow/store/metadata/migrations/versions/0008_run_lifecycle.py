"""Runs: ``archived_at`` and ``deleted_at`` (run lifecycle).

An archived run is hidden from listings and kept; a deleted run is hidden until ``qflow gc``
removes its rows and the blobs only it used. Both are NULL for a run in plain view.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("archived_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("archived_at")
