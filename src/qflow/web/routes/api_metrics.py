"""A run's metrics: keys, one metric's (downsampled) history."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Query, Response

from qflow.store.contract import CHART_POINTS
from qflow.web.routes.params import Ctx, RunId
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)


def to_json(data: Any) -> bytes:
    """JSON as the routes answer it (NaN and ±Infinity as null), written by pydantic-core:
    several times faster than FastAPI's generic encoder or ``json`` on 100,000-point lists."""
    return pydantic_core.to_json(data, inf_nan_mode="null")


@router.get("/runs/{run_id}/metrics")
def run_metrics(ctx: Ctx, run_id: RunId) -> list[dict[str, Any]]:
    """The run's metric keys with their number of points and latest value."""
    run = ctx.metadata.get_run(run_id, summary=False)
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
    run = ctx.metadata.get_run(run_id, summary=False)
    history = ctx.metadata.metric_history(run.id, key, full=full, points=points, after=after)
    return Response(to_json(history), media_type="application/json")
