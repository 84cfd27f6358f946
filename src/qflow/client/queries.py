"""Reads the dashboard needs that the metadata store has no method for: a sorted, filtered,
paginated runs page with param and metric columns, metric keys, and chart-sized histories.

Queries go through ``metadata.engine`` over the tables in ``qflow.store.metadata.schema``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qflow.client import filters
from qflow.errors import InvalidValueError
from qflow.store.metadata import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from qflow.store.metadata.records import Run
    from qflow.store.metadata.store import MetadataStore

MAX_PAGE = 500
CHART_POINTS = 1000


@dataclass
class RunsPage:
    runs: list[dict[str, Any]]
    offset: int
    limit: int
    has_more: bool
    param_keys: list[str] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinities: they become None."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _bits_float(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


def runs_page(
    metadata: MetadataStore,
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
    """One page of runs matching the filter, sorted server-side (NULLs last); archived and
    deleted runs only when asked for."""
    from qflow.store.metadata.runs import shown

    if not 1 <= limit <= MAX_PAGE:
        raise InvalidValueError(f"limit {limit} is out of range; use 1 to {MAX_PAGE}.")
    if offset < 0:
        raise InvalidValueError(f"offset {offset} is negative; use 0 or more.")
    engine = metadata.engine
    dialect = engine.dialect.name
    where = filters.compile_filter(filter_text, dialect)
    order = filters.order_columns(sort or "created_at", dialect)
    query = sa.select(t.runs).where(
        *shown(include_archived=include_archived, include_deleted=include_deleted)
    )
    if where is not None:
        query = query.where(where)
    if workflow:
        query = query.where(t.runs.c.workflow == workflow)
    keys = [*order, t.runs.c.id]
    if descending:
        ordering = [k.desc().nulls_last() for k in keys]
    else:
        ordering = [k.asc().nulls_last() for k in keys]
    query = query.order_by(*ordering).offset(offset).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        runs = summarize(conn, rows)
    params = sorted({k for r in runs for k in r["params"]})
    metric_keys = sorted({k for r in runs for k in r["metrics"]})
    return RunsPage(runs, offset, limit, more, params, metric_keys)


def summarize(conn: Connection, rows: Any) -> list[dict[str, Any]]:
    """Rows of ``runs`` as JSON-able dicts with tags, params and latest metrics (3 queries)."""
    ids = [r.id for r in rows]
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    params: dict[str, dict[str, Any]] = {i: {} for i in ids}
    latest: dict[str, dict[str, float | None]] = {i: {} for i in ids}
    if ids:
        query = sa.select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value)
        for run_id, key, value in conn.execute(query.where(t.tags.c.run_id.in_(ids))):
            tags[run_id][key] = value
        run_level: set[tuple[str, str]] = set()
        params_query = (
            sa.select(t.params.c.run_id, t.params.c.step_run_id, t.params.c.key, t.params.c.value)
            .where(t.params.c.run_id.in_(ids))
            .order_by(t.params.c.id)
        )
        for run_id, step_run_id, key, value in conn.execute(params_query):
            if (run_id, key) not in run_level:
                params[run_id][key] = json.loads(value)
            if step_run_id is None:
                run_level.add((run_id, key))
        last = (
            sa.select(sa.func.max(t.metrics.c.id))
            .where(t.metrics.c.run_id.in_(ids))
            .group_by(t.metrics.c.run_id, t.metrics.c.key)
        )
        latest_query = sa.select(t.metrics.c.run_id, t.metrics.c.key, t.metrics.c.bits).where(
            t.metrics.c.id.in_(last)
        )
        for run_id, key, bits in conn.execute(latest_query):
            latest[run_id][key] = _number(_bits_float(bits))
    return [
        {
            "id": r.id,
            "workflow": r.workflow,
            "status": r.status,
            "created_at": r.created_at,
            "ended_at": r.ended_at,
            "duration": None if r.ended_at is None else r.ended_at - r.created_at,
            "user": r.user,
            "host": r.host,
            "sweep_id": r.sweep_id,
            "parent_run_id": r.parent_run_id,
            "resumed_from": r.resumed_from,
            "error": r.error,
            "archived_at": r.archived_at,
            "deleted_at": r.deleted_at,
            "tags": tags[r.id],
            "params": params[r.id],
            "metrics": latest[r.id],
        }
        for r in rows
    ]


def workflows(metadata: MetadataStore) -> list[dict[str, Any]]:
    """Each workflow with its number of runs and the time of its latest one."""
    query = (
        sa.select(t.runs.c.workflow, sa.func.count(), sa.func.max(t.runs.c.created_at))
        .group_by(t.runs.c.workflow)
        .order_by(t.runs.c.workflow)
    )
    with metadata.engine.connect() as conn:
        return [{"name": w, "runs": n, "last_run_at": last} for w, n, last in conn.execute(query)]


def metric_keys(metadata: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """A run's metric keys with their number of points and latest value."""
    m = t.metrics.c
    query = (
        sa.select(m.key, sa.func.count(), sa.func.max(m.id))
        .where(m.run_id == run_id)
        .group_by(m.key)
        .order_by(m.key)
    )
    with metadata.engine.connect() as conn:
        rows = conn.execute(query).all()
        last = {}
        if rows:
            ids = [r[2] for r in rows]
            for key, bits in conn.execute(sa.select(m.key, m.bits).where(m.id.in_(ids))):
                last[key] = _number(_bits_float(bits))
    return [{"key": k, "points": n, "latest": last.get(k)} for k, n, _ in rows]


def metric_history(
    metadata: MetadataStore,
    run_id: str,
    key: str,
    *,
    full: bool = False,
    points: int = CHART_POINTS,
    after: int = 0,
) -> dict[str, Any]:
    """The history of one metric: x (step, or the point's index) and y, downsampled to about
    ``points`` points (min/max buckets keep spikes) unless ``full`` (which adds timestamps).

    ``after`` skips the points already seen (for live charts: pass ``last_id``).
    """
    if not 10 <= points <= 100_000:
        raise InvalidValueError(f"points={points} is out of range; use 10 to 100000.")
    with metadata.engine.connect() as conn:
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
    # NaN is stored as NULL (its bits are kept apart); charts and JSON show it, and ±inf, as null.
    xs: list[float] = [row[1] if row[1] is not None else index for index, row in enumerate(rows)]
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


def runs_matching(
    metadata: MetadataStore,
    filter_text: str,
    *,
    workflow: str | None = None,
    status: str | None = None,
    tags: dict[str, str] | None = None,
    limit: int = 100,
    include_archived: bool = False,
    include_deleted: bool = False,
) -> list[Run]:
    """Runs matching the filter language (and the plain filters), newest first, as records;
    what ``qf.Client.runs(filter=...)`` and ``qflow runs --filter`` use. Archived and deleted
    runs only when asked for."""
    from qflow.store.metadata.records import Run
    from qflow.store.metadata.runs import shown

    remote = getattr(metadata, "runs_matching", None)
    if remote is not None:  # a RemoteMetadataStore: the server runs the query
        found: list[Run] = remote(
            filter_text,
            workflow=workflow,
            status=status,
            tags=tags,
            limit=limit,
            include_archived=include_archived,
            include_deleted=include_deleted,
        )
        return found
    clauses = shown(include_archived=include_archived, include_deleted=include_deleted)
    where = filters.compile_filter(filter_text, metadata.engine.dialect.name)
    if where is not None:
        clauses.append(where)
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
    query = (
        sa.select(t.runs)
        .where(*clauses)
        .order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
        .limit(limit)
    )
    with metadata.engine.connect() as conn:
        rows = conn.execute(query).all()
        ids = [r.id for r in rows]
        exact: dict[str, dict[str, float]] = {i: {} for i in ids}
        if ids:
            last = (
                sa.select(sa.func.max(t.metrics.c.id))
                .where(t.metrics.c.run_id.in_(ids))
                .group_by(t.metrics.c.run_id, t.metrics.c.key)
            )
            latest = sa.select(t.metrics.c.run_id, t.metrics.c.key, t.metrics.c.bits).where(
                t.metrics.c.id.in_(last)
            )
            for run_id, key, bits in conn.execute(latest):
                exact[run_id][key] = _bits_float(bits)
        summaries = {s["id"]: s for s in summarize(conn, rows)}
    records = []
    for row in rows:
        fields: dict[str, Any] = row._asdict()
        fields.update(
            config=json.loads(row.config),
            meta=json.loads(row.meta),
            tags=summaries[row.id]["tags"],
            params=summaries[row.id]["params"],
            metrics_summary=exact[row.id],
        )
        records.append(Run(**fields))
    return records
