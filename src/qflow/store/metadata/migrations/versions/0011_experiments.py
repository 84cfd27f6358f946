"""Experiments: workflow names recorded before their first run.

MLflow's REST API on ``qflow server`` creates an experiment before any run is logged into it;
the name and its tags were kept in the server's memory, lost on restart and unseen by other
server processes. They are rows of this table now.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("experiments")
