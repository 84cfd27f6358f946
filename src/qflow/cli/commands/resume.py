"""``qflow resume``: run a failed, crashed or killed run again, reusing its finished steps."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption


def resume(
    run_id: Annotated[str, typer.Argument(help="The failed, crashed or killed run (or a prefix).")],
    executor: Annotated[
        str, typer.Option("--executor", "-e", help="local, parallel or ray.")
    ] = "local",
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Worker processes (parallel).")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (executor ray).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Start a new run linked to RUN_ID with its workflow and config; every step that had
    finished with the same inputs is reused, the rest runs."""
    from qflow.runtime.launch import LaunchRequest, launch
    from qflow.runtime.progress import default_progress

    new_id = launch(
        LaunchRequest(
            None,
            project_dir=project,
            executor=executor,
            workers=workers,
            plugins=[default_progress()],
            resume_from=run_id,
            executor_options={"address": address} if address else None,
        )
    )
    console.out.print(f"Run [bold]{new_id}[/] {console.status('succeeded')} (resumed {run_id})")
