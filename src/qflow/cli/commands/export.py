"""``qflow export argo``: write a workflow as a manifest for another scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import OverridesArgument, ProjectOption, parse_tags

app = typer.Typer(help="Export a workflow for another scheduler (Argo Workflows).")


@app.command("argo")
def argo(
    workflow: Annotated[
        str, typer.Argument(help="Workflow name, module:function or file.py:function.")
    ],
    overrides: OverridesArgument = None,
    image: Annotated[
        str, typer.Option("--image", help="Container image with the project and QFlow installed.")
    ] = ...,  # type: ignore[assignment]
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the YAML here (default: stdout).")
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option("--artifacts", help="Artifact store URL every pod reaches (s3://…)."),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Environment of every pod: KEY=VALUE.")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Write an Argo Workflows manifest: one DAG task per step, each calling qflow run-step."""
    import yaml

    from qflow.runtime.argo import export_argo

    manifest = export_argo(
        workflow,
        overrides or [],
        image=image,
        artifacts_url=artifacts,
        project_dir=str(project) if project else None,
        env=parse_tags(env),
    )
    text = yaml.safe_dump(manifest, sort_keys=False, width=1000)
    if output is None:
        console.out.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        return
    output.write_text(text)
    tasks = len(manifest["spec"]["templates"][0]["dag"]["tasks"])
    console.err.print(f"Wrote {output} ({tasks} tasks)")
