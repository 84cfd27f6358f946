"""``qflow sync``: replay a recorded run to a tracker (MLflow, W&B) after the fact."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption


def sync(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    tracker: Annotated[
        str | None,
        typer.Option("--tracker", "-t", help="mlflow or wandb (default: the run's trackers)."),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow tracking URI to send to.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Delete a copy already in the tracker first.")
    ] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Send a run from QFlow's store to a tracker (after it was down, or to a new one)."""
    from dataclasses import asdict

    from qflow.tracking.sync import sync_run

    report = sync_run(
        run_id, tracker=tracker, tracking_uri=tracking_uri, replace=replace, project_dir=project
    )
    if as_json:
        console.print_json(asdict(report))
        return
    console.out.print(
        f"Synced run [bold]{report.run_id}[/] to {', '.join(report.trackers)}: "
        f"{report.steps} steps, {report.metrics} metric points, {report.params} params, "
        f"{report.artifacts} files"
        + (f" (replaced {report.replaced} runs there)" if report.replaced else "")
    )
