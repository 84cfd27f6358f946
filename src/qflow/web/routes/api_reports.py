"""Step reports (``qf.report``): which steps of a run have one, and a report as a page for the
dashboard's sandboxed frame or as one HTML file that opens offline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam

from qflow.tracking.report import load_report, report_label
from qflow.tracking.report_page import policy
from qflow.web.routes.params import Ctx, RunId
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["reports"], responses=ERRORS)
StepName = Annotated[str, PathParam(min_length=1, max_length=500, description="Step run name")]


@router.get("/runs/{run_id}/reports")
def list_reports(ctx: Ctx, run_id: RunId) -> list[dict[str, str]]:
    """The run's steps that made a report, in step order, each with its report's artifact key
    (it changes at each ``qf.report`` call while the step runs)."""
    run = ctx.metadata.get_run(run_id)
    keys = {(a.step_run_id, a.name): a.ref.key for a in ctx.metadata.run_artifacts(run.id)}
    steps = ctx.metadata.step_runs(run.id)
    return [
        {"step": s.name, "key": keys[s.id, report_label(s.name)]}
        for s in steps
        if (s.id, report_label(s.name)) in keys
    ]


@router.get("/runs/{run_id}/steps/{step}/report", response_class=Response)
def step_report(
    ctx: Ctx, run_id: RunId, step: StepName, request: Request, download: bool = False
) -> Response:
    """A step's report page, for a sandboxed frame (an opaque origin: no cookies, storage or
    API of this server) with this server's plotly.js; with ``download``, one HTML file with
    plotly.js embedded, which opens offline."""
    page = load_report(ctx.metadata, ctx.artifacts, run_id, step)
    origin = f"{request.url.scheme}://{request.url.netloc}"
    plotly_src = None if download else f"{origin}/static/vendor/plotly.min.js"
    headers = {
        "Content-Security-Policy": "sandbox allow-scripts; frame-ancestors 'self'; "
        + policy(page, plotly_src),
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store",
    }
    if download:
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in step)[:100]
        headers["Content-Disposition"] = f'attachment; filename="{name}.html"'
    return Response(page.to_html(plotly_src), media_type="text/html", headers=headers)
