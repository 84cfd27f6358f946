"""``qflow report RUN``: a run's report (Markdown or HTML) with plots and a comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption


def report(
    run: Annotated[str | None, typer.Argument(help="Run id or unique prefix.")] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Instead of RUN: the newest run tagged key=value.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown or html.")] = "markdown",
    compare_to: Annotated[
        str | None,
        typer.Option(
            "--compare-to",
            help="RUN, latest-on-branch, branch:NAME, or base ($QFLOW_BASE_BRANCH).",
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the report and its plots.")
    ] = Path("qflow-report"),
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server-url",
            help="The QFlow server's address, to link the run (default: $QFLOW_SERVER_URL, "
            "else $QFLOW_TRACKING_URI).",
        ),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Write a run's report: tracker ids, runtime, metrics, metric histories (Mermaid charts
    in Markdown, which GitHub draws in PR comments; PNGs in HTML and in plots/), and what
    changed against another run (metrics, config, code, data)."""
    from qflow.ci.report import find_run, write_report
    from qflow.client import Client
    from qflow.errors import QFlowError

    if fmt not in ("markdown", "html"):
        raise QFlowError(f"Report format {fmt!r} is not known; use markdown or html.")
    client = Client(project)
    record = find_run(client.metadata, run, tag)
    path = write_report(
        client.metadata,
        record,
        output,
        fmt="html" if fmt == "html" else "markdown",
        compare_to=compare_to,
        project_root=client.project.root,
        server_url=server_url,
    )
    console.out.print(f"Wrote {path}")
