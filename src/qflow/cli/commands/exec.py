"""``qflow exec script.py [args]``: run a plain Python script as a tracked run."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption, parse_tags

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


class ExitCode(Exception):
    """A command's exit code without an error message (``run_cli`` reads ``exit_code``)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"exit code {exit_code}")
        self.exit_code = exit_code


def exec_(
    script: Annotated[str, typer.Argument(help="The Python script to run.")],
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments for the script, passed as they are.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag the run: key=value.")] = None,
    project: ProjectOption = None,
) -> None:
    """Run SCRIPT and record its code, arguments, environment, output, files and qf.log_* calls.

    QFlow's own options go before SCRIPT; everything after it goes to the script.
    """
    from qflow.provenance.script import exec_script

    result = exec_script(script, args or [], project_dir=project, tags=parse_tags(tag))
    console.err.print(
        f"Run [bold]{result.run_id}[/] {console.status(result.status)}: "
        f"{len(result.read)} files read, {len(result.written)} written"
    )
    if result.exit_code:
        raise ExitCode(result.exit_code)
