"""Queries over many runs (``RunQueryStore``): the filter language, the dashboard's sorted and
paginated runs page, per-workflow counts, metric keys and chart-sized metric histories."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from qflow.errors import InvalidValueError
from qflow.store.bits import bits_float, finite
from qflow.store.contract import CHART_POINTS, MAX_PAGE
from qflow.store.metadata import filter_sql
from qflow.store.metadata import schema as t
from qflow.store.metadata.database import translated
from qflow.store.metadata.records import Run, RunsPage
from qflow.store.metadata.runs import RunQueries, run_clauses, shown


def run_row(run: Run) -> dict[str, Any]:
    """A run as one JSON-able row of the runs page."""
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "created_at": run.created_at,
        "ended_at": run.ended_at,
        "duration": None if run.ended_at is None else run.ended_at - run.created_at,
        "user": run.user,
        "host": run.host,
        "sweep_id": run.sweep_id,
        "parent_run_id": run.parent_run_id,
        "resumed_from": run.resumed_from,
        "error": run.error,
        "archived_at": run.archived_at,
        "deleted_at": run.deleted_at,
        "tags": run.tags,
        "params": run.params,
        "metrics": {k: finite(v) for k, v in run.metrics_summary.items()},
    }


class SearchQueries(RunQueries):
    """Reads over many runs, compiled to SQL on the store's own dialect."""

    @translated
    def runs_matching(
        self,
        filter_text: str,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> list[Run]:
        """Runs matching the filter language (and the plain filters), newest first; archived
        and deleted runs only when asked for."""
        clauses = run_clauses(
            workflow=workflow,
            status=status,
            tags=tags,
            include_archived=include_archived,
            include_deleted=include_deleted,
        )
        where = filter_sql.compile_filter(filter_text, self.engine.dialect.name)
        if where is not None:
            clauses.append(where)
        query = (
            sa.select(t.runs)
            .where(*clauses)
            .order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return self._runs(conn, conn.execute(query).all())

    @translated
    def runs_page(
        self,
        *,
        filter_text: str | None = None,
        workflow: str | None = None,
        sort: str = "created_at",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
        include_archived: bool = False,
        include_deleted: bool = False,
    ) -> RunsPage:
        """One page of runs matching the filter, sorted in the database (NULLs last)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidValueError(f"limit {limit} is out of range; use 1 to {MAX_PAGE}.")
        if offset < 0:
            raise InvalidValueError(f"offset {offset} is negative; use 0 or more.")
        dialect = self.engine.dialect.name
        where = filter_sql.compile_filter(filter_text, dialect)
        order = filter_sql.order_columns(sort or "created_at", dialect)
        query = sa.select(t.runs).where(
            *shown(include_archived=include_archived, include_deleted=include_deleted)
        )
        if where is not None:
            query = query.where(where)
        if workflow:
            query = query.where(t.runs.c.workflow == workflow)
        keys = [*order, t.runs.c.id]
        ordering = [(k.desc() if descending else k.asc()).nulls_last() for k in keys]
        query = query.order_by(*ordering).offset(offset).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            runs = [run_row(r) for r in self._runs(conn, rows[:limit])]
        params = sorted({k for r in runs for k in r["params"]})
        metric_keys = sorted({k for r in runs for k in r["metrics"]})
        return RunsPage(runs, offset, limit, len(rows) > limit, params, metric_keys)

    @translated
    def workflow_stats(self) -> list[dict[str, Any]]:
        """Each workflow with its number of runs and the time of its latest one."""
        query = (
            sa.select(t.runs.c.workflow, sa.func.count(), sa.func.max(t.runs.c.created_at))
            .group_by(t.runs.c.workflow)
            .order_by(t.runs.c.workflow)
        )
        with self.engine.connect() as conn:
            return [
                {"name": w, "runs": n, "last_run_at": last} for w, n, last in conn.execute(query)
            ]

    @translated
    def metric_keys(self, run_id: str) -> list[dict[str, Any]]:
        """A run's metric keys with their number of points and latest value."""
        m = t.metrics.c
        query = (
            sa.select(m.key, sa.func.count(), sa.func.max(m.id))
            .where(m.run_id == run_id)
            .group_by(m.key)
            .order_by(m.key)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            last = {}
            if rows:
                ids = [r[2] for r in rows]
                for key, bits in conn.execute(sa.select(m.key, m.bits).where(m.id.in_(ids))):
                    last[key] = finite(bits_float(bits))
        return [{"key": k, "points": n, "latest": last.get(k)} for k, n, _ in rows]

    @translated
    def metric_history(
        self,
        run_id: str,
        key: str,
        *,
        full: bool = False,
        points: int = CHART_POINTS,
        after: int = 0,
    ) -> dict[str, Any]:
        """The history of one metric: x (step, or the point's index) and y, downsampled to
        about ``points`` points (min/max buckets keep spikes) unless ``full`` (which adds
        timestamps). ``after`` skips the points already seen (live charts pass ``last_id``)."""
        if not 10 <= points <= 100_000:
            raise InvalidValueError(f"points={points} is out of range; use 10 to 100000.")
        with self.engine.connect() as conn:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            quote = conn.dialect.identifier_preparer.quote
            names = ["id", "step", "value", *(["timestamp"] if full else [])]
            sql = (
                f"SELECT {', '.join(quote(n) for n in names)} FROM metrics "
                f"WHERE run_id = {mark} AND {quote('key')} = {mark} AND id > {mark} ORDER BY id"
            )
            # The DBAPI cursor directly: 100,000 rows without building SQLAlchemy Row objects.
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, (run_id, key, after))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        total = len(rows)
        last_id = rows[-1][0] if rows else after
        # NaN is stored as NULL (its bits are kept apart); charts and JSON show it, and ±inf,
        # as null.
        xs: list[float] = [row[1] if row[1] is not None else i for i, row in enumerate(rows)]
        ys: list[float | None] = [
            None if (v := row[2]) is None or v in (math.inf, -math.inf) else v for row in rows
        ]
        ts: list[float] = [row[3] for row in rows] if full else []
        sampled = not full and total > points
        if sampled:
            keep = min_max_buckets(ys, max(points // 4, 1))
            xs = [xs[i] for i in keep]
            ys = [ys[i] for i in keep]
        return {
            "run_id": run_id,
            "key": key,
            "total_points": total,
            "downsampled": sampled,
            "last_id": last_id,
            "x": xs,
            "y": ys,
            "timestamp": ts,
        }


def min_max_buckets(ys: list[float | None], buckets: int) -> list[int]:
    """Indices to keep: per bucket the first, smallest, largest and last point, in order.

    At most ``4 * buckets`` points; a spike anywhere survives, unlike plain striding.
    """
    n = len(ys)
    if n <= 4 * buckets:
        return list(range(n))
    keep: list[int] = []
    for b in range(buckets):
        start = b * n // buckets
        end = (b + 1) * n // buckets
        low = high = -1
        low_value = math.inf
        high_value = -math.inf
        for i in range(start, end):
            y = ys[i]
            if y is None:
                continue
            if y < low_value:
                low_value, low = y, i
            if y > high_value:
                high_value, high = y, i
        chosen = {start, end - 1}
        if low >= 0:
            chosen.add(low)
            chosen.add(high)
        keep.extend(sorted(chosen))
    return keep
