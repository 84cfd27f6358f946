"""Initial schema: runs, step runs, artifacts and lineage, params, metrics, tags.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_RUN_FK = "runs.id"


def _run_id(primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "run_id",
        sa.String(26),
        sa.ForeignKey(_RUN_FK, ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("workflow", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("parent_run_id", sa.String(26)),
        sa.Column("resumed_from", sa.String(26)),
        sa.Column("sweep_id", sa.String),
        sa.Column("host", sa.String),
        sa.Column("user", sa.String),
        sa.Column("pid", sa.Integer),
        sa.Column("command", sa.Text),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("meta", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_runs_workflow", "runs", ["workflow"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])

    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _run_id(),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("step", sa.String, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("cache_key", sa.String),
        sa.Column("cached_from", sa.Integer),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("stdout", sa.Text),
        sa.Column("stderr", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("run_id", "name", name="uq_step_runs_run_id_name"),
    )
    op.create_index("ix_step_runs_run_id", "step_runs", ["run_id"])
    op.create_index("ix_step_runs_cache_key", "step_runs", ["cache_key"])

    op.create_table(
        "artifacts",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("serializer", sa.String, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("type_name", sa.String, nullable=False),
        sa.Column("pickled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )

    op.create_table(
        "step_io",
        sa.Column(
            "step_run_id",
            sa.Integer,
            sa.ForeignKey("step_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("direction", sa.String(3), primary_key=True),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("artifact_key", sa.String(64), sa.ForeignKey("artifacts.key"), nullable=False),
    )
    op.create_index("ix_step_io_artifact_key", "step_io", ["artifact_key"])

    op.create_table(
        "params",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _run_id(),
        sa.Column("step_run_id", sa.Integer),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index(
        "uq_params_run_step_key",
        "params",
        ["run_id", sa.text("coalesce(step_run_id, -1)"), "key"],
        unique=True,
    )

    op.create_table(
        "metrics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        _run_id(),
        sa.Column("step_run_id", sa.Integer),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("bits", sa.BigInteger, nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_run_id_key", "metrics", ["run_id", "key"])

    op.create_table(
        "tags",
        _run_id(primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )

    op.create_table(
        "run_artifacts",
        _run_id(primary_key=True),
        sa.Column("step_run_id", sa.Integer),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("artifact_key", sa.String(64), sa.ForeignKey("artifacts.key"), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "run_artifacts",
        "tags",
        "metrics",
        "params",
        "step_io",
        "artifacts",
        "step_runs",
        "runs",
    ):
        op.drop_table(table)
