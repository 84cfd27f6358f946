"""``qflow predict``: batch inference of a registered model over a CSV or Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption


def predict(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or NAME (latest).")],
    source: Annotated[Path, typer.Argument(help="Input rows: a .csv or .parquet file.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where predictions go: .parquet or .csv.")
    ],
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="Rows per chunk (bounds memory).")
    ] = 10_000,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="qflow or mlflow (default: the project's configured)."),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Predict every row of SOURCE with a registered model, in chunks, with a progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from qflow.registry.api import configured
    from qflow.serving.batch import predict_file
    from qflow.serving.live import load

    models = configured(project, registry)
    loaded = load(models, models.get(ref))
    label = f"{loaded.record.name}/{loaded.record.version}"
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console.err,
        disable=not console.err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        rows = predict_file(loaded, source, output, chunk_rows=chunk_size, progress=advance)
    console.out.print(f"{rows} predictions by {label} → {output}")
