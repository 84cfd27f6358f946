"""Runs API: workflows, the runs table, run detail, logs, metrics, artifacts, graph, compare,
lineage."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from qflow.errors import ArtifactNotFoundError
from qflow.store.bits import finite
from qflow.store.contract import CHART_POINTS, MAX_PAGE
from qflow.web import graphs
from qflow.web.context import Context, context
from qflow.web.previews import KEY, image_type, preview, read_bytes
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)
Ctx = Annotated[Context, Depends(context)]
RunId = Annotated[str, PathParam(min_length=1, max_length=64, description="Run id or prefix")]
ArtifactKey = Annotated[str, PathParam(min_length=1, max_length=128, description="sha256 key")]


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
        changed = ctx.metadata.set_run_lifecycle(ids, _LIFECYCLE[change.action])
    if change.tags:
        for run_id in ids:
            ctx.metadata.set_tags(run_id, dict(change.tags))
    return {
        "runs": ids,
        "tags": change.tags,
        "lifecycle": {r.id: str(r.lifecycle) for r in changed},
    }


class TagChange(BaseModel):
    tags: dict[
        Annotated[str, Field(min_length=1, max_length=250)], Annotated[str, Field(max_length=5000)]
    ] = Field(max_length=50)


@router.post("/runs/{run_id}/tags")
def set_run_tags(ctx: Ctx, run_id: RunId, change: TagChange) -> dict[str, str]:
    """Set tags of a run (``name`` and ``note`` are the dashboard's run name and notes)."""
    run = ctx.metadata.get_run(run_id)
    ctx.metadata.set_tags(run.id, dict(change.tags))
    return ctx.metadata.get_run(run.id).tags


def _step_json(step: Any, origin: float) -> dict[str, Any]:
    return {
        "id": step.id,
        "name": step.name,
        "step": step.step,
        "position": step.position,
        "status": step.status,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "start": None if step.started_at is None else step.started_at - origin,
        "duration": step.duration,
        "attempts": step.attempts,
        "params": step.params,
        "cache_key": step.cache_key,
        "cached_from": step.cached_from,
        "reason": step.reason,
        "error": step.error,
        "inputs": {k: v.key for k, v in step.inputs.items()},
        "outputs": {k: _ref_json(v) for k, v in step.outputs.items()},
    }


def _ref_json(ref: Any) -> dict[str, Any]:
    return {
        "key": ref.key,
        "serializer": ref.serializer,
        "size": ref.size,
        "type": ref.type_name,
        "pickled": ref.pickled,
    }


@router.get("/runs/{run_id}")
def get_run(ctx: Ctx, run_id: RunId) -> dict[str, Any]:
    """A run: status, config, params, tags, latest metrics, steps (with timeline offsets in
    seconds from the run's start), artifacts (step outputs and logged ones), metric keys."""
    run = ctx.metadata.get_run(run_id)
    steps = ctx.metadata.step_runs(run.id)
    logged = ctx.metadata.run_artifacts(run.id)
    names = {s.id: s.name for s in steps}
    artifacts = [
        {"name": f"{s.name}.{name}", "step": s.name, "source": "output", **_ref_json(ref)}
        for s in steps
        for name, ref in s.outputs.items()
    ] + [
        {
            "name": a.name,
            "step": names.get(a.step_run_id or -1),
            "source": "logged",
            **_ref_json(a.ref),
        }
        for a in logged
    ]
    meta = {k: v for k, v in run.meta.items() if k not in ("git_diff", "packages")}
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "created_at": run.created_at,
        "ended_at": run.ended_at,
        "duration": run.duration,
        "heartbeat_at": run.heartbeat_at,
        "user": run.user,
        "host": run.host,
        "command": run.command,
        "error": run.error,
        "parent_run_id": run.parent_run_id,
        "resumed_from": run.resumed_from,
        "sweep_id": run.sweep_id,
        "lifecycle": str(run.lifecycle),
        "archived_at": run.archived_at,
        "deleted_at": run.deleted_at,
        "config": run.config,
        "meta": meta,
        "tags": run.tags,
        "params": run.params,
        "metrics": {k: finite(v) for k, v in run.metrics_summary.items()},
        "metric_keys": ctx.metadata.metric_keys(run.id),
        "steps": [_step_json(s, run.created_at) for s in steps],
        "artifacts": artifacts,
    }


_LIFECYCLE = {"delete": "deleted", "archive": "archived", "restore": "active"}


@router.post("/runs/{run_id}/{action}")
def change_lifecycle(
    ctx: Ctx, run_id: RunId, action: Literal["delete", "archive", "restore"]
) -> dict[str, Any]:
    """Delete (soft: hidden until ``qflow gc``), archive (hidden, kept) or restore a run.
    A running run, or deleting one with a registered model version, is refused (422)."""
    (run,) = ctx.metadata.set_run_lifecycle([run_id], _LIFECYCLE[action])
    return {
        "id": run.id,
        "lifecycle": str(run.lifecycle),
        "archived_at": run.archived_at,
        "deleted_at": run.deleted_at,
    }


@router.get("/runs/{run_id}/logs")
def run_logs(
    ctx: Ctx, run_id: RunId, step: Annotated[str | None, Query(max_length=500)] = None
) -> list[dict[str, Any]]:
    """Captured stdout, stderr and traceback of the run's steps (or of one step)."""
    run = ctx.metadata.get_run(run_id)
    steps = [ctx.metadata.get_step_run(run.id, step)] if step else ctx.metadata.step_runs(run.id)
    return [
        {
            "name": s.name,
            "status": s.status,
            "stdout": s.stdout or "",
            "stderr": s.stderr or "",
            "traceback": s.traceback or "",
            "error": s.error,
        }
        for s in steps
    ]


@router.get("/runs/{run_id}/metrics")
def run_metrics(ctx: Ctx, run_id: RunId) -> list[dict[str, Any]]:
    """The run's metric keys with their number of points and latest value."""
    run = ctx.metadata.get_run(run_id)
    return ctx.metadata.metric_keys(run.id)


@router.get("/runs/{run_id}/history", response_class=Response)
def metric_history(
    ctx: Ctx,
    run_id: RunId,
    key: Annotated[str, Query(min_length=1, max_length=500)],
    full: bool = False,
    points: Annotated[int, Query(ge=10, le=100_000)] = CHART_POINTS,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """One metric's history, downsampled to about ``points`` points (min/max per bucket)
    unless ``full``. ``after`` (a ``last_id``) returns only newer points, for live charts.
    Returns ``{run_id, key, total_points, downsampled, last_id, x, y, timestamp}``."""
    run = ctx.metadata.get_run(run_id)
    history = ctx.metadata.metric_history(run.id, key, full=full, points=points, after=after)
    # Serialized here: FastAPI's generic encoder is slow on 100,000-element lists.
    return Response(json.dumps(history), media_type="application/json")


def run_artifact(ctx: Context, run_id: str, key: str) -> tuple[Any, str]:
    """The artifact ``key`` if the run read, wrote or logged it; else a 404."""
    if not KEY.match(key):
        raise ArtifactNotFoundError(
            f"{key[:80]!r} is not an artifact key (64 lowercase hex digits, a sha256)."
        )
    run = ctx.metadata.get_run(run_id)
    for step in ctx.metadata.step_runs(run.id):
        for name, ref in step.outputs.items():
            if ref.key == key:
                return ref, f"{step.name}.{name}"
        for name, ref in step.inputs.items():
            if ref.key == key:
                return ref, name
    for logged in ctx.metadata.run_artifacts(run.id):
        if logged.ref.key == key:
            return logged.ref, logged.name
    raise ArtifactNotFoundError(f"Run {run.id} has no artifact {key[:12]!r}.")


@router.get("/runs/{run_id}/artifacts/{key}/preview")
def artifact_preview(ctx: Ctx, run_id: RunId, key: ArtifactKey) -> dict[str, Any]:
    """A safe preview: image (see ``/raw``), table (first rows), JSON or text; pickles never."""
    ref, name = run_artifact(ctx, run_id, key)
    return preview(ctx.artifacts, ref, name)


@router.get("/runs/{run_id}/artifacts/{key}/raw", response_class=Response)
def artifact_raw(ctx: Ctx, run_id: RunId, key: ArtifactKey) -> Response:
    """The artifact's bytes: images inline, anything else as a download."""
    ref, name = run_artifact(ctx, run_id, key)
    if ref.serializer == "collection":
        raise ArtifactNotFoundError("A mapped step's list has no bytes of its own.")
    data = read_bytes(ctx.artifacts, ref)
    media = image_type(data[:16])
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "artifact"
    if ref.serializer == "dir":  # a folder is stored as a tar of its files
        media = None
        safe_name = safe_name if safe_name.endswith(".tar") else safe_name + ".tar"
    headers = {"Content-Security-Policy": "sandbox; default-src 'none'"}
    if media is None:
        headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    kind = "application/x-tar" if ref.serializer == "dir" else "application/octet-stream"
    return Response(data, media_type=media or kind, headers=headers)


_NO_SHARE = b'<style>.modebar-btn[data-title^="Share"]{display:none !important}</style>\n'
_PLOTLY_CDN = re.compile(rb'<script[^>]*\ssrc="https://cdn\.plot\.ly/[^"]*"[^>]*>\s*</script>')


@router.get("/runs/{run_id}/artifacts/{key}/figure", response_class=Response)
def artifact_figure(ctx: Ctx, run_id: RunId, key: ArtifactKey, request: Request) -> Response:
    """An HTML figure (``qf.log_figure`` of a Plotly figure) to show in a sandboxed frame:
    Plotly's CDN script is replaced by the server's copy; the page runs in an opaque origin
    (no cookies, storage or API of this server) and may load nothing but that script."""
    ref, name = run_artifact(ctx, run_id, key)
    if not name.lower().endswith((".html", ".htm")) or ref.pickled:
        raise ArtifactNotFoundError(f"{name[:100]!r} is not an HTML figure.")
    local = b'<script src="/static/vendor/plotly.min.js"></script>'
    # No "Share chart" (Plotly Cloud upload) button; the sandbox and CSP block it anyway.
    data = _NO_SHARE + _PLOTLY_CDN.sub(local, read_bytes(ctx.artifacts, ref))
    origin = f"{request.url.scheme}://{request.url.netloc}"
    policy = (
        "sandbox allow-scripts; default-src 'none'; "
        f"script-src {origin}/static/vendor/plotly.min.js 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'self'"
    )
    headers = {"Content-Security-Policy": policy, "X-Frame-Options": "SAMEORIGIN"}
    return Response(data, media_type="text/html", headers=headers)


@router.get("/runs/{run_id}/graph")
def run_graph(ctx: Ctx, run_id: RunId) -> dict[str, Any]:
    """The workflow graph with each step's status: nodes, edges, Mermaid and DOT text."""
    run = ctx.metadata.get_run(run_id)
    steps = ctx.metadata.step_runs(run.id)
    return graphs.describe(run, steps, ctx.settings.project_dir)


@router.get("/runs/{run_id}/graph.svg", response_class=Response)
def run_graph_svg(ctx: Ctx, run_id: RunId) -> Response:
    """The graph drawn by Graphviz (``dot -Tsvg``), steps coloured by status."""
    run = ctx.metadata.get_run(run_id)
    steps = ctx.metadata.step_runs(run.id)
    graph, _ = graphs.run_graph(run, steps, ctx.settings.project_dir)
    svg = graphs.to_svg(graphs.to_dot(graph, graphs.step_status(graph, steps)))
    if svg is None:
        from qflow.errors import MissingExtraError

        raise MissingExtraError(
            "Graphviz's 'dot' program is needed to draw the graph. Hint: apt-get install graphviz."
        )
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Content-Security-Policy": "sandbox; default-src 'none'"},
    )


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


@router.get("/lineage/{run_id}")
def lineage(
    ctx: Ctx,
    run_id: RunId,
    target: Annotated[str, Query(min_length=1, max_length=500, description="STEP[.OUTPUT]")],
    forward: bool = False,
) -> dict[str, Any]:
    """Where an output came from (steps, params, inputs, data files), or (``forward``) which
    later steps and runs read it; with a Mermaid picture."""
    from qflow.provenance import lineage as lin

    if forward:
        result = lin.forward(ctx.metadata, run_id=run_id, target=target)
    else:
        result = lin.backward(ctx.metadata, run_id, target)
    return {**result, "mermaid": lin.to_mermaid(result)}


@router.get("/lineage")
def data_lineage(
    ctx: Ctx,
    data: Annotated[str, Query(min_length=1, max_length=4000, description="path or sha256")],
) -> dict[str, Any]:
    """Which runs and steps read one content of a data file (by path as recorded or relative
    to the project, or by sha256 or a unique prefix of it)."""
    from qflow.provenance import lineage as lin

    result = lin.forward(ctx.metadata, data=data, root=ctx.settings.project_dir, disk=False)
    return {**result, "mermaid": lin.to_mermaid(result)}


def _project_dir(ctx: Context) -> Any:
    if ctx.settings.project_dir is None:
        from qflow.errors import NotFoundError

        raise NotFoundError(
            "Sweeps are read from the project's Optuna storage, and this server has no "
            "project. Hint: start it with qflow ui inside the project."
        )
    return ctx.settings.project_dir


@router.get("/sweeps")
def list_sweeps(ctx: Ctx) -> list[dict[str, Any]]:
    """Every sweep of the project, newest first: id, workflow, objective, trials, best value."""
    from qflow.sweep.report import list_sweeps as sweeps

    return sweeps(_project_dir(ctx))


@router.get("/sweeps/{sweep_id}")
def get_sweep(
    ctx: Ctx, sweep_id: Annotated[str, PathParam(min_length=1, max_length=200)]
) -> dict[str, Any]:
    """A sweep: its trials (number, state, value, params, run), the best trial, the search
    space and fANOVA parameter importances."""
    from qflow.sweep.report import sweep_report

    report = sweep_report(sweep_id, _project_dir(ctx), plots=False)
    report.pop("plots", None)
    return report
