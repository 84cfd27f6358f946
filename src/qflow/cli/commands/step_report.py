"""``qflow step-report RUN STEP [PATH]``: a step's ``qf.report`` page as one HTML file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption


def step_report(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    step: Annotated[str, typer.Argument(help="The step's name, as qflow show RUN lists it.")],
    path: Annotated[
        Path | None,
        typer.Argument(help="The HTML file to write (default: STEP.html; - for stdout)."),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Export a step's report (qf.report) as one HTML file that opens offline."""
    from qflow.client import Client
    from qflow.tracking.report import load_report

    client = Client(project)
    page = load_report(client.metadata, client.artifacts, run, step).to_html()
    if str(path) == "-":
        sys.stdout.write(page)
        return
    target = path or Path("".join(c if c.isalnum() or c in "._-" else "_" for c in step) + ".html")
    target.write_text(page, encoding="utf-8")
    console.err.print(f"Report of step {step} written to {target} ({len(page):,} characters).")
