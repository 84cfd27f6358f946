"""``qflow import mlflow --from URI``: bring a team's MLflow history into QFlow."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption

app = typer.Typer(
    name="import",
    help="Import runs from another tracker into this project's stores.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("mlflow")
def mlflow(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="MLflow tracking URI: http://host:5000, sqlite:///mlflow.db, a folder."
        ),
    ],
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="Only this experiment (repeatable)."),
    ] = None,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Deleted experiments and runs too.")
    ] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Copy experiments, runs, params, metrics, tags and artifacts from MLflow; runs already
    imported are skipped, so it is safe to run again (a half-copied run is copied again)."""
    from dataclasses import asdict
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from qflow.config.project import find_project
    from qflow.integrations.mlflow import resolve_tracking_uri
    from qflow.integrations.mlflow_import import import_mlflow
    from qflow.store import open_stores

    root = find_project(Path(project) if project else None).root
    uri = source
    if "://" not in source and Path(source).expanduser().is_dir():
        uri, _ = resolve_tracking_uri(str(Path(source).expanduser().resolve()), root)
    metadata, artifacts = open_stores(root)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console.err,
        disable=not console.err.is_terminal,
    ) as bar:
        task = bar.add_task("MLflow runs", total=None)

        def advance(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what[:60])

        try:
            report = import_mlflow(
                uri,
                metadata,
                artifacts,
                experiments=experiment or None,
                include_deleted=include_deleted,
                progress=advance,
            )
        finally:
            metadata.dispose()
    if as_json:
        console.print_json(asdict(report))
        return
    console.out.print(
        f"Imported {report.runs} runs from {report.experiments} experiments of {report.source}: "
        f"{report.params} params, {report.metrics} metric points, {report.artifacts} files"
        + (f"; {report.skipped} already imported" if report.skipped else "")
        + (f"; {report.replaced} half-copied runs copied again" if report.replaced else "")
    )
