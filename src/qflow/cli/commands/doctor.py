"""``qflow doctor``: check the project's store and name every bad object."""

from __future__ import annotations

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption


def doctor(project: ProjectOption = None) -> None:
    """Check the metadata database's integrity and that every artifact it references exists
    and matches its hash. Exits 1 when something is wrong."""
    from qflow.config.project import existing_project
    from qflow.store import open_stores
    from qflow.store.doctor import check

    metadata, artifacts = open_stores(existing_project(project).root, create=False)
    problems, checked = check(metadata, artifacts)
    for problem in problems:
        console.out.print(f"[red]✗[/] {problem}", markup=True, highlight=False)
    if problems:
        console.err.print(f"{len(problems)} problem(s) in {checked} artifacts and the database.")
        raise typer.Exit(1)
    console.out.print(f"[green]✓[/] database ok, {checked} artifacts present and whole")
