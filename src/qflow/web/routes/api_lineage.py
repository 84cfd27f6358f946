"""Lineage (where an output came from, who used it, who read a data file) and sweeps."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from qflow.web.context import Context
from qflow.web.routes.params import Ctx, RunId
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)


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
