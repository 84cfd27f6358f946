"""``qflow run-step``: run one step call from a task spec (the worker entry point)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def run_step(
    spec: Annotated[
        str | None, typer.Argument(help="The task spec as JSON (or use --spec-file).")
    ] = None,
    spec_file: Annotated[
        str | None, typer.Option("--spec-file", "-f", help="Read the spec from a file; - is stdin.")
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream",
            "-u",
            help="An upstream task's result JSON, or a list of them (repeatable).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result JSON here too.")
    ] = None,
) -> None:
    """Run the step call SPEC describes and print its result as JSON on stdout.

    The step's own output goes to stderr. Exit code 0 if the step succeeded, 1 if it failed.
    """
    from qflow.errors import QFlowError
    from qflow.runtime.remote import load_spec, run_step

    if spec_file is not None:
        text = sys.stdin.read() if spec_file == "-" else Path(spec_file).read_text()
    elif spec is not None:
        text = spec
    else:
        raise QFlowError("qflow run-step needs a task spec: SPEC, --spec-file PATH or -f -.")
    task = load_spec(text)
    if upstream:
        results = task.setdefault("upstream", [])
        for text in upstream:
            value = json.loads(text)
            results.extend(value if isinstance(value, list) else [value])
    with contextlib.redirect_stdout(sys.stderr):
        result = run_step(task)
    text = json.dumps(result)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if result["status"] != "succeeded":
        raise typer.Exit(1)
