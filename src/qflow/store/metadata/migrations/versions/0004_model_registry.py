"""Model registry: registered models, their versions, tags, aliases and the aliases' history.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _model_fk() -> sa.ForeignKey:
    return sa.ForeignKey("registered_models.name", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String, _model_fk(), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(26), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("step_run_id", sa.Integer, nullable=False),
        sa.Column("step", sa.String, nullable=False),
        sa.Column("output", sa.String, nullable=False),
        sa.Column("artifact_key", sa.String(64), sa.ForeignKey("artifacts.key"), nullable=False),
        sa.Column("signature", sa.Text),
        sa.Column("environment", sa.Text, nullable=False, server_default="{}"),
        sa.Column("environment_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String),
        sa.Column("pickled", sa.Boolean, nullable=False),
    )
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_table(
        "model_tags",
        sa.Column("name", sa.String, _model_fk(), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String, _model_fk(), primary_key=True),
        sa.Column("alias", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("alias", sa.String, nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("previous_version", sa.Integer),
        sa.Column("who", sa.String),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alias_history_name_alias", "alias_history", ["name", "alias"])


def downgrade() -> None:
    for table in ("alias_history", "model_aliases", "model_tags", "model_versions"):
        op.drop_table(table)
    op.drop_table("registered_models")
