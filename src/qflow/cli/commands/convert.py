"""``qflow convert notebook.ipynb -o src/NAME/steps/x.py``: a notebook into a steps module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console


def convert(
    notebook: Annotated[Path, typer.Argument(help="The .ipynb file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The module to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT.")] = False,
) -> None:
    """Turn a notebook into steps: tagged cells and top-level functions become @qf.step."""
    from qflow.provenance.notebook import convert as convert_notebook

    result = convert_notebook(notebook, output, force=force)
    console.out.print(f"Wrote {result.path}: steps {', '.join(result.steps) or '(none)'}")
    if result.workflow:
        console.out.print(f"Workflow: {result.workflow}")
    if result.dropped_cells:
        cells = ", ".join(map(str, result.dropped_cells))
        console.err.print(f"Left out untagged cells {cells}; tag them 'step' to keep them.")
