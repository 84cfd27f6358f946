"""``qflow reproduce RUN``: run again with the recorded config and code; compare outputs."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.commands.exec import ExitCode
from qflow.cli.options import JsonOption, ProjectOption


def reproduce(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Re-run RUN with its recorded config and code and check each output's hash."""
    from rich.markup import escape

    from qflow.provenance.reproduce import reproduce as reproduce_run

    report = reproduce_run(run_id, project_dir=project)
    if as_json:
        console.print_json(report.to_dict())
    else:
        console.out.print(f"Reproducing {report.original} from {escape(report.source)}")
        for warning in report.warnings:
            console.err.print(f"[yellow]warning:[/] {escape(warning)}")
        console.out.print(f"Run [bold]{report.run_id}[/] {console.status(report.status)}")
        for check in report.outputs:
            mark = "[green]same[/]" if check.matches else "[red]differs[/]"
            new = (check.new or "missing")[:12]
            console.out.print(f"  {escape(check.name)}: {mark} ({check.original[:12]} → {new})")
        verdict = "identical outputs" if report.identical else "outputs differ"
        console.out.print(f"[bold]{verdict}[/]")
    if not report.identical:
        raise ExitCode(1)
