"""``qflow gc``: remove deleted runs, artifacts nothing live uses, and old temp files."""

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
    tmp_age: Annotated[
        float,
        typer.Option(
            "--tmp-age",
            help="Remove QFlow temp files (interrupted writes, folder loads) older than this "
            "many seconds.",
        ),
    ] = 86400.0,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Remove deleted runs (qflow runs delete), then the artifacts no live run, model version
    or cache entry uses, then old temp files. Safe while runs are going on."""
    from qflow.client import Client
    from qflow.errors import InvalidValueError
    from qflow.provenance.gc import collect

    for name, value in (("--min-age", min_age), ("--tmp-age", tmp_age)):
        if not value >= 0:
            raise InvalidValueError(
                f"{name} {value:g} is not a number of seconds. Hint: use 0 or more."
            )
    client = Client(project)
    result = collect(
        client.metadata, client.artifacts, dry_run=dry_run, min_age=min_age, tmp_age=tmp_age
    )
    if as_json:
        console.print_json(result.to_dict())
        return
    verb = "Would free" if dry_run else "Freed"
    if result.runs:
        removed = "Would remove" if dry_run else "Removed"
        console.out.print(f"{removed} {result.runs} deleted runs: {', '.join(result.run_ids)}.")
    if result.runs_kept:
        console.out.print(
            f"Kept {result.runs_kept} deleted runs that model versions were registered from."
        )
    freed = result.blob_bytes + result.row_bytes + result.tmp_bytes
    console.out.print(
        f"{verb} {_size(freed)}: {result.blobs} blobs "
        f"({_size(result.blob_bytes)}), {result.rows} inline artifacts "
        f"({_size(result.row_bytes)}) and {result.tmp_files} temp files "
        f"({_size(result.tmp_bytes)})."
    )
    if result.kept:
        console.out.print(f"Kept {result.kept} unreferenced blobs younger than {min_age:g}s.")
    if result.rescued:
        console.out.print(f"Kept {result.rescued} blobs that running work reused meanwhile.")
