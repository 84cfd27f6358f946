"""Statements on the hot path of a run, built once.

Building a SQLAlchemy statement costs far more Python time than executing it on SQLite; these
are reused with bound parameters for every step of every run.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import sqlalchemy as sa

from qflow.store.metadata import schema as t
from qflow.store.metadata.records import OPEN, REUSABLE, StepStatus


def use_columns(use: sa.Table) -> list[Any]:
    """The artifacts row's columns for a use, with the use's own serializer, type and flag
    when it recorded them (``ref_from_row`` reads the result)."""
    a = t.artifacts.c
    own = use.c
    return [
        a.key,
        a.size,
        a.data,
        a.created_at,
        sa.func.coalesce(own.serializer, a.serializer).label("serializer"),
        sa.func.coalesce(own.serializer_version, a.serializer_version).label("serializer_version"),
        sa.func.coalesce(own.type_name, a.type_name).label("type_name"),
        sa.func.coalesce(own.pickled, a.pickled).label("pickled"),
    ]


_missing_output = (
    sa.select(t.step_io.c.step_run_id)
    .outerjoin(t.artifacts, t.artifacts.c.key == t.step_io.c.artifact_key)
    .where(
        t.step_io.c.step_run_id == t.step_runs.c.id,
        t.step_io.c.direction == "out",
        t.artifacts.c.key.is_(None),
    )
)

_deleted_run = sa.select(t.runs.c.id).where(
    t.runs.c.id == t.step_runs.c.run_id, t.runs.c.deleted_at.is_not(None)
)

_c = t.step_runs.c

IN_CHUNK = 500
"""The most values one ``IN`` list of these statements carries."""


def _latest(group: Any, *where: Any, joined: Any = t.step_runs) -> sa.Subquery:
    """The id (``id``) of the latest step run matching ``where`` for each value of ``group``."""
    return (
        sa.select(sa.func.max(_c.id).label("id"))
        .select_from(joined)
        .where(*where)
        .group_by(group)
        .subquery()
    )


_latest_cached = _latest(
    _c.cache_key,
    _c.cache_key.in_(sa.bindparam("cache_keys", expanding=True)),
    _c.status == StepStatus.SUCCEEDED,
    ~sa.exists(_missing_output),
    ~sa.exists(_deleted_run),
)
FIND_CACHED = sa.select(t.step_runs).join(_latest_cached, _latest_cached.c.id == _c.id)
"""For each of some cache keys (``IN_CHUNK`` at most), the latest succeeded step run with it
whose outputs are all recorded, in a run that is not deleted (``qflow gc`` is about to take a
deleted run's outputs)."""

_latest_previous = _latest(
    _c.name,
    t.runs.c.workflow == sa.bindparam("workflow"),
    _c.name.in_(sa.bindparam("names", expanding=True)),
    _c.run_id < sa.bindparam("before_run"),
    _c.status.in_(REUSABLE),
    joined=t.step_runs.join(t.runs, t.runs.c.id == _c.run_id),
)
PREVIOUS_STEP_RUNS = sa.select(t.step_runs).join(_latest_previous, _latest_previous.c.id == _c.id)
"""For each of some step calls (names; ``IN_CHUNK`` at most), its latest finished run in
earlier runs of a workflow: what a cache miss is compared against."""

DATA_FILES_OF = (
    sa.select(t.data_files, t.step_runs.c.name.label("step_name"))
    .join(t.step_runs, t.step_runs.c.id == t.data_files.c.step_run_id)
    .where(t.data_files.c.step_run_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(t.data_files.c.step_run_id, t.data_files.c.id)
)
"""The data files of some step runs (of any runs), by step run, in recorded order."""

STEP_IO = (
    sa.select(
        t.step_io.c.step_run_id, t.step_io.c.direction, t.step_io.c.name, *use_columns(t.step_io)
    )
    .join(t.artifacts, t.artifacts.c.key == t.step_io.c.artifact_key)
    .where(t.step_io.c.step_run_id.in_(sa.bindparam("ids", expanding=True)))
)
"""Inputs and outputs (with their artifacts) of some step runs."""

INSERT_STEP_RUN = t.step_runs.insert()
"""A new step run (``executemany``)."""

_is_open = sa.or_(*(_c.status == status for status in OPEN))
"""``status IN OPEN`` without an expanding parameter, which ``executemany`` cannot take."""


def _kept(column: str) -> Any:
    """The column's new value, or its old one when the parameter ``new_<column>`` is None."""
    return sa.func.coalesce(sa.bindparam(f"new_{column}"), _c[column])


OPEN_STEP_RUNS = (
    sa.select(_c.id, _c.run_id)
    .where(_c.id.in_(sa.bindparam("ids", expanding=True)), _is_open)
    .with_for_update()
)
"""Which of some step runs are still open (locked until the transaction ends on PostgreSQL,
so nothing finishes them in between)."""

START_STEP_RUNS = (
    t.step_runs.update()
    .where(_c.id == sa.bindparam("_id"), _is_open)
    .values(
        status=StepStatus.RUNNING,
        started_at=sa.bindparam("new_started_at"),
        cache_key=_kept("cache_key"),
        fingerprint=_kept("fingerprint"),
        reason=_kept("reason"),
    )
)
"""Mark open step runs running (``executemany``); a finished one never moves back."""

_OUTCOME_COLUMNS = (
    "status", "error", "traceback", "stdout", "stderr", "attempts", "cached_from", "ended_at",
)  # fmt: skip
_KEPT_COLUMNS = ("started_at", "cache_key", "fingerprint", "reason")

FINISH_STEP_RUNS = (
    t.step_runs.update()
    .where(_c.id == sa.bindparam("_id"), _is_open)
    .values(
        {
            **{column: sa.bindparam(f"new_{column}") for column in _OUTCOME_COLUMNS},
            **{column: _kept(column) for column in _KEPT_COLUMNS},
        }
    )
)
"""Finish open step runs (``executemany``): the outcome's columns, keeping the recorded
start time, cache key, fingerprint and reason where the outcome has none."""


def _copy(table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
    selected: list[Any] = [sa.bindparam("run_id"), sa.bindparam("step_run_id")]
    selected += [table.c[c] for c in columns]
    select = sa.select(*selected).where(table.c.step_run_id == sa.bindparam("source"))
    if table is t.run_artifacts:
        taken = sa.select(t.run_artifacts.c.name).where(
            t.run_artifacts.c.run_id == sa.bindparam("run_id")
        )
        select = select.where(table.c.name.not_in(taken))
    return table.insert().from_select(["run_id", "step_run_id", *columns], select)


COPY_STEP_RECORDS = (
    _copy(t.metrics, ("key", "value", "bits", "step", "timestamp")),
    _copy(t.params, ("key", "value")),
    _copy(
        t.run_artifacts,
        ("name", "artifact_key", "serializer", "serializer_version", "type_name", "pickled"),
    ),
)
"""Copy what a step run logged (metrics, params, files) onto another step run."""


@cache
def insert_ignore(dialect: str, table: sa.Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for ``dialect``."""
    # Imported here: the PostgreSQL dialect pulls in asyncio and ssl, which a SQLite store
    # never needs.
    module = importlib.import_module(f"sqlalchemy.dialects.{_dialect_module(dialect)}")
    return module.insert(table).on_conflict_do_nothing()


def _dialect_module(dialect: str) -> str:
    return "postgresql" if dialect == "postgresql" else "sqlite"
