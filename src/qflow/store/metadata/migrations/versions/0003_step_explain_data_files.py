"""Step runs record their code fingerprint and why they ran; data files read by steps.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text, nullable=True))
    op.create_table(
        "data_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "step_run_id",
            sa.Integer,
            sa.ForeignKey("step_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_data_files_step_run_id", "data_files", ["step_run_id"])
    op.create_index("ix_data_files_sha256", "data_files", ["sha256"])


def downgrade() -> None:
    op.drop_table("data_files")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("reason")
        batch.drop_column("fingerprint")
