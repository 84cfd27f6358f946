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
    with KubeRay, and the QFlow server, and the Dockerfile of the image they all run (QFlow
    and the project); build and push that image, then terraform init/plan/apply there."""
    from qflow.ci.infra import write_infra

    folder = output if output is not None else Path("infra") / cloud
    written = write_infra(cloud, folder, force=force)
    console.out.print(f"Wrote {len(written)} files to {folder}:")
    for path in written:
        console.out.print(f"  {path.name}")
    console.out.print(
        f"[dim]Next: docker build -f {folder}/Dockerfile -t IMAGE . (the team image, with "
        f"QFlow and this project), push it, then cd {folder} && terraform init && terraform "
        "plan -var qflow_image=IMAGE -var 'api_allowed_cidrs=[\"YOUR.NETWORK/24\"]'[/]",
        markup=True,
        highlight=False,
    )
