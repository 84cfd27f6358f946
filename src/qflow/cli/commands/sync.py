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
        bool,
        typer.Option("--replace", help="Send it again, deleting the copy there."),
    ] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Send a run from QFlow's store to a tracker (after it was down, or to a new one).

    Safe to repeat: a run already whole in the tracker is skipped, a partial copy (an outage
    mid-run) is replaced by the whole run."""
    from dataclasses import asdict

    from qflow.tracking.sync import sync_run

    report = sync_run(
        run_id, tracker=tracker, tracking_uri=tracking_uri, replace=replace, project_dir=project
    )
    if as_json:
        console.print_json(asdict(report))
        return
    if report.skipped:
        console.out.print(
            f"Run [bold]{report.run_id}[/] is already whole in {', '.join(report.skipped)}; "
            f"nothing sent there (qflow sync {report.run_id} --replace sends it again)."
        )
    sent = [t for t in report.trackers if t not in report.skipped]
    if not sent:
        return
    console.out.print(
        f"Synced run [bold]{report.run_id}[/] to {', '.join(sent)}: "
        f"{report.steps} steps, {report.metrics} metric points, {report.params} params, "
        f"{report.artifacts} files"
        + (f" (replaced {report.replaced} runs there)" if report.replaced else "")
    )
