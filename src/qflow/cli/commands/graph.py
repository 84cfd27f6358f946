"""``qflow graph``: the traced graph as Mermaid, DOT, or an SVG/PNG picture."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import OverridesArgument, ProjectOption
from qflow.errors import MissingExtraError, QFlowError


def graph(
    workflow: Annotated[
        str, typer.Argument(help="Workflow name, module:function or file.py:function.")
    ],
    overrides: OverridesArgument = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="mermaid or dot.")] = "mermaid",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write a picture: a .svg or .png file.")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Trace WORKFLOW with its config and print its graph (steps run nothing)."""
    from qflow.config.loader import load_config
    from qflow.config.project import find_project
    from qflow.graph.render import to_dot, to_mermaid
    from qflow.runtime.discovery import load_workflow

    if fmt not in ("mermaid", "dot"):
        raise QFlowError(f"Unknown graph format {fmt!r}; use mermaid or dot.")
    found = find_project(project)
    wf = load_workflow(workflow, found)
    traced = wf.trace(load_config(wf.name, overrides or [], found.conf_dir))
    text = to_mermaid(traced.graph) if fmt == "mermaid" else to_dot(traced.graph)
    console.out.out(text, end="", highlight=False)
    if output is not None:
        write_picture(to_dot(traced.graph), output)
        console.err.print(f"wrote {output}")


def write_picture(dot_source: str, output: Path) -> None:
    """Render DOT with Graphviz's ``dot`` into ``output`` (format from its suffix)."""
    suffix = output.suffix.lstrip(".").lower()
    if suffix not in ("svg", "png"):
        raise QFlowError(f"Cannot write {output}: the picture must be a .svg or .png file.")
    dot = shutil.which("dot")
    if dot is None:
        raise MissingExtraError(
            "Graphviz's 'dot' program is needed to draw pictures.\n"
            "Hint: apt-get install graphviz (or brew install graphviz); the Mermaid and DOT "
            "text output works without it."
        )
    result = subprocess.run(
        [dot, f"-T{suffix}", "-o", str(output)],
        input=dot_source.encode(),
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise QFlowError(f"Graphviz failed to write {output}: {result.stderr.decode().strip()}")
