"""The metadata tables (SQLAlchemy Core); Alembic migrations create and evolve them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

VERSION_TABLE = "qflow_schema_version"
"""Alembic's version table for QFlow's schema. Not Alembic's default ``alembic_version``, so
other tools that use Alembic in the same database (Optuna's study storage) keep their own."""

metadata = MetaData()

# 64-bit ids on PostgreSQL; plain INTEGER on SQLite so the column aliases the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

runs = Table(
    "runs",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("workflow", String, nullable=False, index=True),
    Column("status", String, nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    Column("ended_at", Float),
    Column("config", Text, nullable=False),
    Column("parent_run_id", String(26)),
    Column("resumed_from", String(26)),
    Column("sweep_id", String),
    Column("host", String),
    Column("user", String),
    Column("pid", Integer),
    Column("command", Text),
    Column("heartbeat_at", Float),
    Column("error", Text),
    Column("meta", Text, nullable=False, server_default="{}"),
    # Lifecycle (migration 0008): hidden from listings when set; deleted runs go at qflow gc.
    Column("archived_at", Float),
    Column("deleted_at", Float),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(26), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String, nullable=False),
    Column("step", String, nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("cache_key", String, index=True),
    Column("cached_from", Integer),
    Column("params", Text, nullable=False),
    Column("error", Text),
    Column("traceback", Text),
    Column("stdout", Text),
    Column("stderr", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("fingerprint", String(64)),
    # Why the step ran (the cache miss explained) or why it was skipped.
    Column("reason", Text),
    # sha256 of the step's source; the text is an inline artifact with that key (provenance).
    Column("source_key", String(64)),
    UniqueConstraint("run_id", "name", name="uq_step_runs_run_id_name"),
    Index("ix_step_runs_run_id", "run_id"),
)


def _use_columns() -> list[Column[Any]]:
    """A use of an artifact (a step's input or output, a logged file) records how to read it
    back, since the artifacts row is shared by every value with the same bytes."""
    return [
        Column("serializer", String),
        Column("serializer_version", String),
        Column("type_name", String),
        Column("pickled", Boolean),
    ]


artifacts = Table(
    "artifacts",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("serializer", String, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("type_name", String, nullable=False),
    Column("pickled", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    # Small values live here instead of in a blob file (see ArtifactStore.put(inline_max=)).
    Column("data", LargeBinary),
    Column("serializer_version", String),
)

step_io = Table(
    "step_io",
    metadata,
    Column(
        "step_run_id",
        Integer,
        ForeignKey("step_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("direction", String(3), primary_key=True),
    Column("name", String, primary_key=True),
    Column("artifact_key", String(64), ForeignKey("artifacts.key"), nullable=False, index=True),
    # How this use's bytes are read back (migration 0009): two values with the same bytes
    # (b"1" from a custom serializer, the JSON int 1) share a blob, not a serializer. NULL in
    # rows written before 0009: the artifacts row's serializer applies.
    *_use_columns(),
)

data_files = Table(
    "data_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("step_run_id", Integer, ForeignKey("step_runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String, nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Index("ix_data_files_step_run_id", "step_run_id"),
    Index("ix_data_files_sha256", "sha256"),
)

# Installed packages, stored once per distinct environment; runs.meta keeps the hash only.
environments = Table(
    "environments",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("packages", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

params = Table(
    "params",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(26), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step_run_id", Integer),
    Column("key", String, nullable=False),
    Column("value", Text, nullable=False),
)
# NULL step_run_id (a run-level param) must collide with itself, so index coalesce(..., -1).
Index(
    "uq_params_run_step_key",
    params.c.run_id,
    func.coalesce(params.c.step_run_id, -1),
    params.c.key,
    unique=True,
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(26), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step_run_id", Integer),
    Column("key", String, nullable=False),
    Column("value", Float),
    Column("bits", BigInteger, nullable=False),
    Column("step", BigInteger),  # 64-bit on PostgreSQL since migration 0010
    Column("timestamp", Float, nullable=False),
    # Covering: a run's latest value of a metric is an index-only lookup (migration 0007).
    Index("ix_metrics_run_key_id_value", "run_id", "key", "id", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(26), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(26), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("step_run_id", Integer),
    Column("name", String, primary_key=True),
    Column("artifact_key", String(64), ForeignKey("artifacts.key"), nullable=False),
    *_use_columns(),
)

# -- model registry (qflow.registry) ------------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String, primary_key=True),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", String),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column(
        "name",
        String,
        ForeignKey("registered_models.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("run_id", String(26), ForeignKey("runs.id"), nullable=False, index=True),
    Column("step_run_id", Integer, nullable=False),
    Column("step", String, nullable=False),
    Column("output", String, nullable=False),
    Column("artifact_key", String(64), ForeignKey("artifacts.key"), nullable=False),
    Column("signature", Text),
    Column("environment", Text, nullable=False, server_default="{}"),
    Column("environment_hash", String(64), nullable=False),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", String),
    Column("pickled", Boolean, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column(
        "name", String, ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    ),
    # 0 tags the registered model itself, N tags version N.
    Column("version", Integer, primary_key=True),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column(
        "name", String, ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    ),
    Column("alias", String, primary_key=True),
    Column("version", Integer, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False),
    Column("alias", String, nullable=False),
    Column("version", Integer),
    Column("previous_version", Integer),
    Column("who", String),
    Column("changed_at", Float, nullable=False),
    Index("ix_alias_history_name_alias", "name", "alias"),
)

# Workflow names recorded before their first run, as MLflow's API creates experiments
# (migration 0011; qflow.store.metadata.experiments).
experiments = Table(
    "experiments",
    metadata,
    Column("name", String, primary_key=True),
    Column("tags", Text, nullable=False, server_default="{}"),
    Column("created_at", Float, nullable=False),
)
