"""Queries on runs."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qflow.errors import (
    InvalidValueError,
    RunNotFoundError,
    did_you_mean,
)
from qflow.ids import new_run_id
from qflow.store.bits import bits_float
from qflow.store.metadata import schema as t
from qflow.store.metadata.database import Database, Retry, translated
from qflow.store.metadata.records import OPEN, Run, RunLifecycle, RunStatus, StepStatus
from qflow.store.metadata.rows import (
    current_user,
    dumps,
    pid_alive,
)

HEARTBEAT_TIMEOUT = 120.0


def shown(*, include_archived: bool = False, include_deleted: bool = False) -> list[Any]:
    """WHERE clauses that hide archived and deleted runs unless asked for."""
    clauses: list[Any] = []
    if not include_archived:
        clauses.append(t.runs.c.archived_at.is_(None))
    if not include_deleted:
        clauses.append(t.runs.c.deleted_at.is_(None))
    return clauses


def run_clauses(
    *,
    workflow: str | None = None,
    status: str | None = None,
    tags: dict[str, str] | None = None,
    include_archived: bool = False,
    include_deleted: bool = False,
) -> list[Any]:
    """WHERE clauses for the plain run filters shared by ``list_runs`` and ``runs_matching``."""
    clauses = shown(include_archived=include_archived, include_deleted=include_deleted)
    if workflow is not None:
        clauses.append(t.runs.c.workflow == workflow)
    if status is not None:
        clauses.append(t.runs.c.status == status)
    for key, value in (tags or {}).items():
        clauses.append(
            sa.exists().where(
                t.tags.c.run_id == t.runs.c.id, t.tags.c.key == key, t.tags.c.value == value
            )
        )
    return clauses


class RunQueries(Database):
    """Runs: create, finish, find, list, and detect crashed ones."""

    @translated(retry=Retry.UNCOMMITTED)  # without run_id, a second try is a second run
    def create_run(
        self,
        *,
        workflow: str,
        config: dict[str, Any],
        run_id: str | None = None,
        parent_run_id: str | None = None,
        resumed_from: str | None = None,
        sweep_id: str | None = None,
        command: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Run:
        """Record a new running run on this host and process.

        Idempotent for a given ``run_id``: when that run exists with the same workflow and
        config (a request re-sent after its answer was lost), it is returned unchanged."""
        now = time.time()
        row: dict[str, Any] = {
            "id": run_id or new_run_id(),
            "workflow": workflow,
            "status": RunStatus.RUNNING,
            "created_at": now,
            "ended_at": None,
            "config": dumps(config),
            "parent_run_id": parent_run_id,
            "resumed_from": resumed_from,
            "sweep_id": sweep_id,
            "host": socket.gethostname(),
            "user": current_user(),
            "pid": os.getpid(),
            "command": command,
            "heartbeat_at": now,
            "error": None,
            "meta": dumps(meta or {}),
        }
        with self.engine.begin() as conn:
            if run_id is not None:
                existing = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).all()
                if existing:
                    return self._same_run(conn, existing[0], workflow, row["config"])
            conn.execute(t.runs.insert(), row)
        return Run(**{**row, "config": dict(config), "meta": dict(meta or {})})

    def _same_run(self, conn: Connection, existing: Any, workflow: str, config: str) -> Run:
        if existing.workflow != workflow or json.loads(existing.config) != json.loads(config):
            raise InvalidValueError(
                f"Run id {existing.id!r} is taken by another run (workflow "
                f"{existing.workflow!r}). Hint: leave run_id unset to get a fresh id."
            )
        return self._runs(conn, [existing])[0]

    @translated
    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run. A finished run keeps its status; one marked crashed only because its
        heartbeat went quiet takes the status its process reports after all."""
        with self.engine.begin() as conn:
            conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.id == run_id,
                    t.runs.c.status.in_((RunStatus.RUNNING, RunStatus.CRASHED)),
                )
                .values(status=status, ended_at=time.time(), error=error)
            )

    @translated
    def heartbeat(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.runs.update().where(t.runs.c.id == run_id).values(heartbeat_at=time.time())
            )

    @translated
    def mark_crashed_runs(self) -> list[str]:
        """Mark "running" runs whose process died (on this host) or went silent as crashed.

        The open step runs of a run whose process is gone are closed as ``killed``; those of
        a run that only went silent stay open until it is resumed (it may still be alive)."""
        now = time.time()
        host = socket.gethostname()
        with self.engine.begin() as conn:
            running = conn.execute(
                sa.select(t.runs.c.id, t.runs.c.host, t.runs.c.pid, t.runs.c.heartbeat_at).where(
                    t.runs.c.status == RunStatus.RUNNING
                )
            ).all()
            dead = [
                r.id
                for r in running
                if r.host == host and r.pid is not None and not pid_alive(r.pid)
            ]
            silent = [
                r.id
                for r in running
                if r.id not in dead and (r.heartbeat_at or 0.0) < now - HEARTBEAT_TIMEOUT
            ]
            if dead or silent:
                conn.execute(
                    t.runs.update()
                    .where(t.runs.c.id.in_(dead + silent), t.runs.c.status == RunStatus.RUNNING)
                    .values(
                        status=RunStatus.CRASHED,
                        ended_at=now,
                        error="The run's process died or stopped sending heartbeats.",
                    )
                )
            if dead:  # its steps can never finish now; a silent run's still might
                conn.execute(
                    t.step_runs.update()
                    .where(
                        t.step_runs.c.run_id.in_(dead),
                        t.step_runs.c.status.in_(OPEN),
                    )
                    .values(
                        status=StepStatus.KILLED,
                        ended_at=now,
                        error="the run's process died (crashed)",
                    )
                )
        return dead + silent

    @translated
    def get_run(self, run_id_or_prefix: str, *, summary: bool = True) -> Run:
        """A run by exact id or unique id prefix (``summary=False``: no metrics summary)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id_or_prefix)).all()
            if not rows:
                rows = conn.execute(
                    sa.select(t.runs)
                    .where(t.runs.c.id.startswith(run_id_or_prefix.lower(), autoescape=True))
                    .order_by(t.runs.c.id.desc())
                    .limit(11)
                ).all()
            if len(rows) > 1:
                shown = ", ".join(r.id for r in rows[:10])
                raise RunNotFoundError(
                    f"Run id prefix {run_id_or_prefix!r} matches several runs: {shown}"
                    f"{' …' if len(rows) > 10 else ''}. Hint: type more characters of the id."
                )
            if not rows:
                recent = conn.execute(
                    sa.select(t.runs.c.id).order_by(t.runs.c.created_at.desc()).limit(500)
                ).scalars()
                raise RunNotFoundError(
                    f"No run with id {run_id_or_prefix!r}.{did_you_mean(run_id_or_prefix, recent)}"
                )
            return self._runs(conn, rows, summary=summary)[0]

    @translated
    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching every filter given, newest first; archived and deleted runs only
        when asked for."""
        clauses = run_clauses(
            workflow=workflow,
            status=status,
            tags=tags,
            include_archived=include_archived,
            include_deleted=include_deleted,
        )
        query = (
            sa.select(t.runs)
            .where(*clauses)
            .order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
        )
        with self.engine.connect() as conn:
            return self._runs(conn, conn.execute(query.limit(limit)).all())

    @translated
    def workflows(self) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(t.runs.c.workflow).distinct().order_by(t.runs.c.workflow)
            return list(conn.execute(query).scalars())

    def _runs(self, conn: Connection, rows: Sequence[Any], *, summary: bool = True) -> list[Run]:
        """Runs with tags, params (run-level ones win over steps') and, with ``summary``, latest
        metrics; 3 queries (2 without)."""
        ids = [r.id for r in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        params: dict[str, dict[str, object]] = {i: {} for i in ids}
        summaries: dict[str, dict[str, float]] = {i: {} for i in ids}
        for run_id, key, value in conn.execute(
            sa.select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value).where(t.tags.c.run_id.in_(ids))
        ):
            tags[run_id][key] = value
        run_level: set[tuple[str, str]] = set()
        for run_id, step_run_id, key, value in conn.execute(
            sa.select(t.params.c.run_id, t.params.c.step_run_id, t.params.c.key, t.params.c.value)
            .where(t.params.c.run_id.in_(ids))
            .order_by(t.params.c.id)
        ):
            if (run_id, key) not in run_level:
                params[run_id][key] = json.loads(value)
            if step_run_id is None:
                run_level.add((run_id, key))
        latest = (
            sa.select(sa.func.max(t.metrics.c.id))
            .where(t.metrics.c.run_id.in_(ids))
            .group_by(t.metrics.c.run_id, t.metrics.c.key)
        )
        columns = (t.metrics.c.run_id, t.metrics.c.key, t.metrics.c.bits)
        query = sa.select(*columns).where(t.metrics.c.id.in_(latest))
        for run_id, key, bits in conn.execute(query) if summary else ():
            summaries[run_id][key] = bits_float(bits)
        runs = []
        for row in rows:
            fields: dict[str, Any] = row._asdict()
            fields.update(
                config=json.loads(row.config),
                meta=json.loads(row.meta),
                tags=tags[row.id],
                params=params[row.id],
                metrics_summary=summaries[row.id],
            )
            runs.append(Run(**fields))
        return runs

    @translated
    def update_run_meta(self, run_id: str, changes: dict[str, Any]) -> None:
        """Merge ``changes`` into a run's ``meta`` (top-level keys replaced)."""
        with self.engine.begin() as conn:
            query = sa.select(t.runs.c.meta).where(t.runs.c.id == run_id)
            meta = json.loads(conn.execute(query).scalar_one())
            meta.update(changes)
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(meta=dumps(meta)))

    @translated
    def set_run_lifecycle(self, run_ids: Sequence[str], lifecycle: str) -> list[Run]:
        """Archive, delete (soft, until ``qflow gc``) or restore runs, by id or unique prefix.

        All or nothing: a running run, or (for delete) one with a registered model version,
        refuses the whole call with one line naming it. Returns the runs as they are now."""
        try:
            target = RunLifecycle(lifecycle)
        except ValueError:
            allowed = ", ".join(m.value for m in RunLifecycle)
            raise InvalidValueError(
                f"Run lifecycle {lifecycle!r} is not one of {allowed}."
            ) from None
        runs = [self.get_run(r) for r in dict.fromkeys(run_ids)]
        ids = list(dict.fromkeys(r.id for r in runs))
        if not ids:
            return []
        if target is not RunLifecycle.ACTIVE:
            for run in runs:
                if run.status == RunStatus.RUNNING:
                    raise InvalidValueError(
                        f"Run {run.id} is still running; it cannot be {target.value}. "
                        "Hint: stop it (Ctrl-C) or wait until it ends, then try again."
                    )
        now = time.time()
        changes: dict[RunLifecycle, dict[str, float | None]] = {
            RunLifecycle.ACTIVE: {"archived_at": None, "deleted_at": None},
            RunLifecycle.ARCHIVED: {"archived_at": now, "deleted_at": None},
            RunLifecycle.DELETED: {"deleted_at": now},
        }
        values = changes[target]
        with self.engine.begin() as conn:
            if target is RunLifecycle.DELETED:
                self._refuse_registered(conn, ids)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(t.runs.update().where(t.runs.c.id.in_(chunk)).values(**values))
        return [self.get_run(i) for i in ids]

    def _refuse_registered(self, conn: Connection, ids: list[str]) -> None:
        query = (
            sa.select(
                t.model_versions.c.run_id, t.model_versions.c.name, t.model_versions.c.version
            )
            .where(t.model_versions.c.run_id.in_(ids))
            .order_by(t.model_versions.c.name, t.model_versions.c.version)
        )
        found = conn.execute(query).first()
        if found is not None:
            raise InvalidValueError(
                f"Run {found.run_id} cannot be deleted: model {found.name!r} version "
                f"{found.version} was registered from it. Hint: archive the run instead "
                f"(qflow runs archive {found.run_id}), which hides it and keeps the model."
            )
