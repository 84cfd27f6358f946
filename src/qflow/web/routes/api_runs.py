"""Runs API across runs: workflows, the runs table (page, CSV, group counts), bulk changes,
comparison."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from qflow.store.bits import finite
from qflow.store.contract import MAX_PAGE
from qflow.web.context import Context
from qflow.web.routes.params import Ctx
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)
LIFECYCLE = {"delete": "deleted", "archive": "archived", "restore": "active"}
"""The lifecycle each dashboard action sets."""


@router.get("/health", include_in_schema=False)
def api_health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/workflows")
def list_workflows(ctx: Ctx) -> list[dict[str, Any]]:
    """Every workflow with runs: name, number of runs, time of the latest."""
    return ctx.metadata.workflow_stats()


# Free-text search looks in these fields (the filter language's ``~``, "contains").
SEARCH_FIELDS = ("id", "workflow", "status", "user", "host", "sweep_id", "tags.name", "tags.note")


def search_filter(text: str | None, search: str | None) -> str | None:
    """The filter ``text`` and-ed with a free-text ``search`` over ``SEARCH_FIELDS``."""
    parts = [f"({text})"] if text and text.strip() else []
    if search and search.strip():
        quoted = "'" + search.strip().replace("\\", "\\\\").replace("'", "\\'") + "'"
        parts.append("(" + " or ".join(f"{f} ~ {quoted}" for f in SEARCH_FIELDS) + ")")
    return " and ".join(parts) or None


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.C": 1.0, ...}`` (lists stay values)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


def git_commit(meta: dict[str, Any]) -> str | None:
    git = meta.get("git")
    commit = git.get("commit") if isinstance(git, dict) else meta.get("git_commit")
    return str(commit) if commit else None


def with_config(ctx: Context, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the runs page with each run's flattened config, git commit, name and note
    (one more query for the page, through the store's filter language)."""
    ids = [r["id"] for r in rows]
    records: dict[str, Any] = {}
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        text = "id in (" + ", ".join(f"'{i}'" for i in chunk) + ")"
        for found in ctx.metadata.runs_matching(
            text, limit=len(chunk), include_archived=True, include_deleted=True
        ):
            records[found.id] = found
    out = []
    for row in rows:
        run = records.get(row["id"])
        out.append(
            {
                **row,
                "name": row["tags"].get("name"),
                "note": row["tags"].get("note"),
                "config": flat(run.config) if run is not None else {},
                "git_commit": git_commit(run.meta) if run is not None else None,
            }
        )
    return out


Filter = Annotated[str | None, Query(max_length=4000, description="e.g. metrics.acc > 0.9")]
Search = Annotated[str | None, Query(max_length=200, description="free text: id, name, note…")]
Sort = Annotated[str, Query(max_length=500, description="field, e.g. metrics.acc")]


@router.get("/runs")
def list_runs(
    ctx: Ctx,
    filter: Filter = None,
    workflow: Annotated[str | None, Query(max_length=500)] = None,
    sort: Sort = "created_at",
    order: Literal["asc", "desc"] = "desc",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    include_archived: bool = False,
    include_deleted: bool = False,
    q: Search = None,
) -> dict[str, Any]:
    """One page of runs (server-side filter, free-text search ``q``, sort and pagination)
    with their flattened config, params, tags, latest metrics, name, note and git commit;
    ``config_keys``/``param_keys``/``metric_keys`` name the columns on this page. Archived
    and deleted runs are left out unless ``include_archived``/``include_deleted``."""
    page = ctx.metadata.runs_page(
        filter_text=search_filter(filter, q),
        workflow=workflow,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
        include_archived=include_archived,
        include_deleted=include_deleted,
    )
    runs = with_config(ctx, page.runs)
    return {
        "runs": runs,
        "offset": page.offset,
        "limit": page.limit,
        "has_more": page.has_more,
        "next_offset": page.offset + page.limit if page.has_more else None,
        "config_keys": sorted({k for r in runs for k in r["config"]}),
        "param_keys": page.param_keys,
        "metric_keys": page.metric_keys,
        "tag_keys": sorted({k for r in runs for k in r["tags"]}),
    }


def _csv_cell(value: Any) -> str:
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value)
    # A leading = + - @ would be read as a formula by spreadsheets.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@router.get("/runs.csv", response_class=Response)
def export_runs(
    ctx: Ctx,
    filter: Filter = None,
    workflow: Annotated[str | None, Query(max_length=500)] = None,
    sort: Sort = "created_at",
    order: Literal["asc", "desc"] = "desc",
    q: Search = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """The matching runs (up to ``limit``) as CSV: one column per field, config value, param,
    tag and latest metric."""
    import csv
    import io

    rows: list[dict[str, Any]] = []
    offset = 0
    while len(rows) < limit:
        page = ctx.metadata.runs_page(
            filter_text=search_filter(filter, q),
            workflow=workflow,
            sort=sort,
            descending=order == "desc",
            offset=offset,
            limit=min(MAX_PAGE, limit - len(rows)),
        )
        rows += with_config(ctx, page.runs)
        if not page.has_more:
            break
        offset += page.limit
    plain = ["id", "name", "workflow", "status", "created_at", "duration", "sweep_id"]
    plain += ["git_commit", "note"]
    spaces = ("config", "params", "tags", "metrics")
    keys = {s: sorted({k for r in rows for k in r[s]}) for s in spaces}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(plain + [f"{s}.{k}" for s in spaces for k in keys[s]])
    for r in rows:
        cells = [r.get(c) for c in plain] + [r[s].get(k) for s in spaces for k in keys[s]]
        writer.writerow([_csv_cell(c) for c in cells])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="runs.csv"'},
    )


@router.get("/runs/groups")
def group_runs(
    ctx: Ctx,
    by: Annotated[str, Query(min_length=1, max_length=500, description="config.x or tags.y")],
    filter: Filter = None,
    workflow: Annotated[str | None, Query(max_length=500)] = None,
    q: Search = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 20_000,
) -> dict[str, Any]:
    """How many of the matching runs (the newest ``limit``) have each value of ``by`` (a
    ``config.PATH``, ``params.KEY``, ``tags.KEY`` or a plain field); ``None`` is "not set"."""
    space, _, key = by.partition(".")
    runs = ctx.metadata.runs_matching(
        search_filter(filter, q) or "", workflow=workflow, limit=limit
    )
    counts: dict[str, int] = {}
    for run in runs:
        if space == "config":
            value = flat(run.config).get(key)
        elif space in ("params", "tags"):
            value = getattr(run, space).get(key)
        else:
            plain = ("workflow", "status", "user", "host", "sweep_id")
            value = getattr(run, by, None) if by in plain else None
        label = json.dumps(value) if not isinstance(value, str) else value
        counts[label] = counts.get(label, 0) + 1
    groups = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {
        "by": by,
        "runs": len(runs),
        "truncated": len(runs) == limit,
        "groups": [{"value": v, "count": n} for v, n in groups],
    }


class BulkChange(BaseModel):
    """Runs to change together: tags to set (a value of ``""`` removes nothing; it sets "")
    and/or a lifecycle action."""

    runs: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=MAX_PAGE
    )
    tags: dict[
        Annotated[str, Field(min_length=1, max_length=250)], Annotated[str, Field(max_length=5000)]
    ] = Field(default_factory=dict, max_length=50)
    action: Literal["delete", "archive", "restore"] | None = None


@router.post("/runs/bulk")
def bulk_change(ctx: Ctx, change: BulkChange) -> dict[str, Any]:
    """Tag, archive, delete or restore several runs (the run lifecycle: all or nothing, a
    running run or one with a registered model version is refused with 422)."""
    ids = [ctx.metadata.get_run(r).id for r in change.runs]
    changed = []
    if change.action is not None:
        changed = ctx.metadata.set_run_lifecycle(ids, LIFECYCLE[change.action])
    if change.tags:
        for run_id in ids:
            ctx.metadata.set_tags(run_id, dict(change.tags))
    return {
        "runs": ids,
        "tags": change.tags,
        "lifecycle": {r.id: str(r.lifecycle) for r in changed},
    }


@router.get("/compare")
def compare(
    ctx: Ctx,
    runs: Annotated[list[str], Query(min_length=1, max_length=20, description="run ids")],
) -> dict[str, Any]:
    """Several runs side by side: flattened config and params (and which differ), latest
    metrics, metric keys, run names."""
    records = [ctx.metadata.get_run(r[:64]) for r in runs]
    configs = [flat(r.config) for r in records]
    param_keys = sorted({k for r in records for k in r.params})
    config_keys = sorted({k for c in configs for k in c})
    metric_keys = sorted({k for r in records for k in r.metrics_summary})

    def differ(values: list[Any]) -> bool:
        return len({json.dumps(v, sort_keys=True, default=repr) for v in values}) > 1

    return {
        "runs": [
            {
                "id": r.id,
                "name": r.tags.get("name"),
                "workflow": r.workflow,
                "status": r.status,
                "created_at": r.created_at,
                "config": c,
                "params": r.params,
                "tags": r.tags,
                "metrics": {k: finite(v) for k, v in r.metrics_summary.items()},
            }
            for r, c in zip(records, configs, strict=True)
        ],
        "config_keys": config_keys,
        "differing_config": [
            k for k in config_keys if differ([c.get(k, "<missing>") for c in configs])
        ],
        "param_keys": param_keys,
        "differing_params": [
            k for k in param_keys if differ([r.params.get(k, "<missing>") for r in records])
        ],
        "metric_keys": metric_keys,
    }
