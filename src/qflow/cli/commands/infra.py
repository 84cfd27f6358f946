"""``qflow infra init aws|gcp``: Terraform for the team stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console

app = typer.Typer(help="Infrastructure for a team: Terraform templates.", no_args_is_help=True)


@app.command("init")
def init(
    cloud: Annotated[str, typer.Argument(help="aws or gcp.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder (default: infra/<cloud>).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
) -> None:
    """Write Terraform for a bucket (artifacts), managed PostgreSQL (metadata), Kubernetes
    with KubeRay, and the QFlow server; then terraform init/plan/apply in that folder."""
    from qflow.ci.infra import write_infra

    folder = output if output is not None else Path("infra") / cloud
    written = write_infra(cloud, folder, force=force)
    console.out.print(f"Wrote {len(written)} files to {folder}:")
    for path in written:
        console.out.print(f"  {path.name}")
    console.out.print(f"[dim]Next: cd {folder} && terraform init && terraform plan[/]")
