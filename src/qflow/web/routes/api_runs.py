"""Runs API: workflows, the runs table, run detail, logs, metrics, artifacts, graph, compare,
lineage."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam

from qflow.errors import ArtifactNotFoundError
from qflow.store.contract import CHART_POINTS, MAX_PAGE
from qflow.store.wire import finite
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


@router.get("/runs")
def list_runs(
    ctx: Ctx,
    filter: Annotated[
        str | None, Query(max_length=4000, description="e.g. metrics.acc > 0.9")
    ] = None,
    workflow: Annotated[str | None, Query(max_length=500)] = None,
    sort: Annotated[
        str, Query(max_length=500, description="field, e.g. metrics.acc")
    ] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    include_archived: bool = False,
    include_deleted: bool = False,
) -> dict[str, Any]:
    """One page of runs (server-side filter, sort and pagination) with their params, tags and
    latest metrics; ``param_keys``/``metric_keys`` name the columns on this page. Archived and
    deleted runs are left out unless ``include_archived``/``include_deleted``."""
    page = ctx.metadata.runs_page(
        filter_text=filter,
        workflow=workflow,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
        include_archived=include_archived,
        include_deleted=include_deleted,
    )
    return {
        "runs": page.runs,
        "offset": page.offset,
        "limit": page.limit,
        "has_more": page.has_more,
        "next_offset": page.offset + page.limit if page.has_more else None,
        "param_keys": page.param_keys,
        "metric_keys": page.metric_keys,
    }


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
    headers = {"Content-Security-Policy": "sandbox; default-src 'none'"}
    if media is None:
        headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    return Response(data, media_type=media or "application/octet-stream", headers=headers)


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
    """Several runs side by side: params (and which differ), latest metrics, metric keys."""
    records = [ctx.metadata.get_run(r[:64]) for r in runs]
    param_keys = sorted({k for r in records for k in r.params})
    metric_keys = sorted({k for r in records for k in r.metrics_summary})
    differing = [
        k for k in param_keys if len({repr(r.params.get(k, "<missing>")) for r in records}) > 1
    ]
    return {
        "runs": [
            {
                "id": r.id,
                "workflow": r.workflow,
                "status": r.status,
                "created_at": r.created_at,
                "params": r.params,
                "metrics": {k: finite(v) for k, v in r.metrics_summary.items()},
            }
            for r in records
        ],
        "param_keys": param_keys,
        "differing_params": differing,
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
