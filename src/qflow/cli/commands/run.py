"""``qflow run``: run a workflow with config overrides."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import OverridesArgument, ProjectOption, parse_tags


def run(
    workflow: Annotated[
        str, typer.Argument(help="Workflow name, module:function or file.py:function.")
    ],
    overrides: OverridesArgument = None,
    executor: Annotated[str, typer.Option("--executor", "-e", help="local")] = "local",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step again.")] = False,
    rerun: Annotated[
        list[str] | None, typer.Option("--rerun", help="Run this step again (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag the run: key=value.")] = None,
    project: ProjectOption = None,
) -> None:
    """Run WORKFLOW. Overrides set config values, e.g. `qflow run train model.C=0.5`."""
    from qflow.runtime.launch import launch
    from qflow.runtime.progress import default_progress

    run_id = launch(
        workflow,
        overrides=overrides or [],
        project_dir=project,
        executor=executor,
        use_cache=not no_cache,
        rerun=rerun or [],
        plugins=[default_progress()],
        tags=parse_tags(tag),
    )
    console.out.print(f"Run [bold]{run_id}[/] {console.status('succeeded')}")
    console.out.print(f"[dim]qflow show {run_id}[/]")
