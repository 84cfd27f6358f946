"""``qflow gc``: delete artifacts nothing references any more."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
    min_age: Annotated[
        float,
        typer.Option("--min-age", help="Keep blobs younger than this many seconds."),
    ] = 3600.0,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Delete artifacts that no run, model version or cache entry references."""
    from qflow.client import Client
    from qflow.provenance.gc import collect

    client = Client(project)
    result = collect(client.metadata, client.artifacts, dry_run=dry_run, min_age=min_age)
    if as_json:
        console.print_json(result.to_dict())
        return
    verb = "Would free" if dry_run else "Freed"
    console.out.print(
        f"{verb} {_size(result.blob_bytes + result.row_bytes)}: {result.blobs} blobs "
        f"({_size(result.blob_bytes)}) and {result.rows} inline artifacts "
        f"({_size(result.row_bytes)})."
    )
    if result.kept:
        console.out.print(f"Kept {result.kept} unreferenced blobs younger than {min_age:g}s.")
