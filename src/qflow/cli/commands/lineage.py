"""``qflow lineage RUN STEP[.OUTPUT]``: where an artifact came from, or (``--forward``) who
used it."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption


def lineage(
    run_id: Annotated[
        str | None, typer.Argument(help="Run id or a unique prefix of it.", show_default=False)
    ] = None,
    target: Annotated[
        str | None, typer.Argument(help="STEP or STEP.OUTPUT (3_fit, fit.model).")
    ] = None,
    forward: Annotated[
        bool, typer.Option("--forward", help="Show the runs and steps that used it.")
    ] = False,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="A data file instead of RUN STEP: a path (relative to here or to the project "
            "root) or a sha256 (or unique prefix). Lists the runs that read that content.",
        ),
    ] = None,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print a Mermaid flowchart.")] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Show everything an artifact came from: steps, params, inputs, data files, code."""
    from pathlib import Path

    from qflow.client import Client
    from qflow.provenance import lineage as lin

    client = Client(project)
    metadata = client.metadata
    if data is not None or forward:
        result = lin.forward(
            metadata,
            run_id=run_id,
            target=target,
            data=data,
            cwd=Path.cwd(),
            root=client.project.root,
        )
    else:
        if run_id is None or target is None:
            raise typer.BadParameter("give RUN and STEP[.OUTPUT] (or --data PATH --forward)")
        result = lin.backward(metadata, run_id, target)
    if as_json:
        console.print_json(result)
    elif mermaid:
        console.out.out(lin.to_mermaid(result), highlight=False, end="")
    else:
        console.out.print(lin.render_tree(result))
