"""``qflow metrics KEY``: one metric across runs, as a table, JSON or a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption


def metrics(
    key: Annotated[str, typer.Argument(help="The metric's name.")],
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only runs of this workflow.")
    ] = None,
    runs: Annotated[
        list[str] | None, typer.Option("--runs", "-r", help="Only these runs (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many runs.")] = 100,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Save a chart to this file (.png, .svg, .pdf).")
    ] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Print KEY's value in each run (last, min, max, points), oldest run first."""
    from rich.table import Table

    from qflow.client import Client
    from qflow.provenance import metrics_across as across

    rows = across.metric_across(
        Client(project).metadata, key, workflow=workflow, runs=runs, limit=limit
    )
    if plot is not None:
        saved = across.plot(rows, key, plot)
        console.err.print(f"Chart saved to {saved}")
    if as_json:
        console.print_json(rows)
        return
    if not rows:
        console.err.print(f"No run logged metric {key!r}.")
        return
    table = Table(box=None, header_style="bold")
    for column in ("run", "workflow", "status", "started", key, "min", "max", "points"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row["run_id"],
            row["workflow"],
            console.status(row["status"]),
            console.when(row["created_at"])[5:16],
            f"{row['value']:.6g}",
            f"{row['min']:.6g}",
            f"{row['max']:.6g}",
            str(row["points"]),
        )
    console.out.print(table)
