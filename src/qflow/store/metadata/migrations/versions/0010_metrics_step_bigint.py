"""Metrics: ``step`` is a 64-bit integer on PostgreSQL.

``qf.log_metric`` accepts any step index in int64, but the column was a 32-bit ``integer`` on
PostgreSQL, so a step beyond ±2³¹ passed the check and failed when flushed. SQLite's integers
are 64-bit already: nothing changes there (no table rebuild).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("metrics", "step", type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("metrics", "step", type_=sa.Integer(), existing_type=sa.BigInteger())
