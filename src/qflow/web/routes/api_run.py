"""One run: its detail (steps, artifacts, metric keys), tags, lifecycle, logs and graph."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from qflow.store.metadata.records import Run, StepRun
from qflow.web import graphs
from qflow.web.context import Context
from qflow.web.routes.api_runs import LIFECYCLE
from qflow.web.routes.params import Ctx, RunId
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)


class TagChange(BaseModel):
    tags: dict[
        Annotated[str, Field(min_length=1, max_length=250)], Annotated[str, Field(max_length=5000)]
    ] = Field(max_length=50)


@router.post("/runs/{run_id}/tags")
def set_run_tags(ctx: Ctx, run_id: RunId, change: TagChange) -> dict[str, str]:
    """Set tags of a run (``name`` and ``note`` are the dashboard's run name and notes)."""
    run = ctx.metadata.get_run(run_id, summary=False)
    ctx.metadata.set_tags(run.id, dict(change.tags))
    return ctx.metadata.get_run(run.id, summary=False).tags


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
    # The latest metrics come from metric_keys: the run's own summary would count them again.
    run = ctx.metadata.get_run(run_id, summary=False)
    return run_detail(ctx, run, ctx.metadata.step_runs(run.id))


def run_detail(ctx: Context, run: Run, steps: list[StepRun]) -> dict[str, Any]:
    """``GET /api/runs/{run_id}``'s answer for ``run`` (read without its metrics summary)
    and its ``steps``."""
    keys = ctx.metadata.metric_keys(run.id)
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
        "metrics": {m["key"]: m["latest"] for m in keys},
        "metric_keys": keys,
        "steps": [_step_json(s, run.created_at) for s in steps],
        "artifacts": artifacts,
    }


@router.post("/runs/{run_id}/{action}")
def change_lifecycle(
    ctx: Ctx, run_id: RunId, action: Literal["delete", "archive", "restore"]
) -> dict[str, Any]:
    """Delete (soft: hidden until ``qflow gc``), archive (hidden, kept) or restore a run.
    A running run, or deleting one with a registered model version, is refused (422)."""
    (run,) = ctx.metadata.set_run_lifecycle([run_id], LIFECYCLE[action])
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
    run = ctx.metadata.get_run(run_id, summary=False)
    steps = [ctx.metadata.get_step_run(run.id, step)] if step else ctx.metadata.step_runs(run.id)
    return [log_entry(s) for s in steps]


def log_entry(step: StepRun) -> dict[str, Any]:
    """A step's captured output, as ``GET /api/runs/{run_id}/logs`` lists it."""
    return {
        "name": step.name,
        "status": step.status,
        "stdout": step.stdout or "",
        "stderr": step.stderr or "",
        "traceback": step.traceback or "",
        "error": step.error,
    }


@router.get("/runs/{run_id}/graph")
def run_graph(ctx: Ctx, run_id: RunId) -> dict[str, Any]:
    """The workflow graph with each step's status: nodes, edges, Mermaid and DOT text."""
    run = ctx.metadata.get_run(run_id, summary=False)
    steps = ctx.metadata.step_runs(run.id)
    return graphs.describe(run, steps, ctx.settings.project_dir)


@router.get("/runs/{run_id}/graph.svg", response_class=Response)
def run_graph_svg(ctx: Ctx, run_id: RunId) -> Response:
    """The graph drawn by Graphviz (``dot -Tsvg``), steps coloured by status."""
    run = ctx.metadata.get_run(run_id, summary=False)
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
