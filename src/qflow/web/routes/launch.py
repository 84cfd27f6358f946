"""Launch API: the project's workflows, their resolved config (the form), start and follow."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam

from qflow.errors import WorkflowNotFoundError
from qflow.web.context import Context, context
from qflow.web.launcher import LAUNCH_TAG, Launcher
from qflow.web.schemas import ERRORS, ConfigRequest, LaunchRequest

router = APIRouter(prefix="/api/launch", tags=["launch"], responses=ERRORS)
Ctx = Annotated[Context, Depends(context)]
Name = Annotated[str, PathParam(min_length=1, max_length=200)]


def _launcher(ctx: Context) -> Launcher:
    if ctx.launcher is None:
        raise WorkflowNotFoundError(
            "This server has no project to launch workflows from. "
            "Hint: qflow ui (in the project folder) can launch runs; qflow server cannot."
        )
    return ctx.launcher


@router.get("/workflows")
def launchable(ctx: Ctx) -> list[str]:
    """Names of the workflows the project declares."""
    return sorted(_launcher(ctx).workflows())


@router.get("/workflows/{name}/config")
def workflow_config(ctx: Ctx, name: Name) -> dict[str, Any]:
    """The workflow's resolved config and its leaves as form fields."""
    return _launcher(ctx).config(name)


@router.post("/workflows/{name}/config")
def workflow_config_with(ctx: Ctx, name: Name, body: ConfigRequest) -> dict[str, Any]:
    """The config with ``overrides`` applied (checks them without starting anything)."""
    return _launcher(ctx).config(name, body.overrides)


@router.post("", status_code=202)
def start(ctx: Ctx, body: LaunchRequest) -> dict[str, Any]:
    """Start a run of ``workflow`` with ``overrides`` (``key=value``) in a child process."""
    return _launcher(ctx).start(body.workflow, body.overrides).to_dict()


@router.get("/{launch_id}")
def follow(
    ctx: Ctx, launch_id: Annotated[str, PathParam(min_length=1, max_length=64)]
) -> dict[str, Any]:
    """A launch: state, process output, and its run id once the run is recorded."""
    launch = _launcher(ctx).get(launch_id)
    found = ctx.metadata.list_runs(
        tags={LAUNCH_TAG: launch.id}, limit=1, include_archived=True, include_deleted=True
    )
    return {**launch.to_dict(), "run_id": found[0].id if found else None}
