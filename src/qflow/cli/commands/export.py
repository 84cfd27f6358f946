"""``qflow export RUN STEP[.OUTPUT] PATH``: a step output as a file in its natural format;
``qflow export argo``: write a workflow as a manifest for another scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from qflow.cli import console
from qflow.cli.options import OverridesArgument, ProjectOption, parse_tags


class _ExportGroup(TyperGroup):
    """``qflow export RUN STEP PATH`` is ``qflow export output RUN STEP PATH``: anything that
    is not a subcommand's name is a run id."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "output", self.commands["output"], args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_ExportGroup,
    help="Export a step output to a file (qflow export RUN STEP[.OUTPUT] PATH), or a workflow "
    "for another scheduler (qflow export argo WORKFLOW).",
)


@app.command("output")
def output_(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id or unique prefix.")],
    target: Annotated[
        str,
        typer.Argument(
            metavar="STEP[.OUTPUT]", help="Step call (3_fit) or step name, and the output."
        ),
    ],
    path: Annotated[
        Path,
        typer.Argument(
            help="Where to write: .parquet/.csv for tables, .npy for arrays, .json for "
            "JSON-able values, .pkl for other objects; file and folder outputs as themselves."
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    project: ProjectOption = None,
) -> None:
    """Write a step output of RUN to PATH in its natural format (the default command:
    `qflow export RUN STEP[.OUTPUT] PATH`)."""
    import shutil

    from qflow.client import Client
    from qflow.client.export import export_value
    from qflow.errors import QFlowError

    step_name, _, output = target.partition(".")
    step = Client(project).run(run_id).step(step_name)
    outputs = step.record.outputs
    if not output:
        if len(outputs) != 1:
            raise QFlowError(
                f"Step {step.record.name!r} has outputs {', '.join(outputs) or '(none)'}; say "
                f"which one: qflow export {run_id} {step.record.name}.OUTPUT {path}"
            )
        output = next(iter(outputs))
    value: Any = step.load(output)
    if path.exists() or path.is_symlink():
        if not force:
            raise QFlowError(
                f"{str(path)!r} already exists; nothing was written.\n"
                "Hint: --force replaces it, or choose another path."
            )
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    label = f"{step.record.name}.{output}"
    written = export_value(value, outputs[output].serializer, path, label=label)
    console.err.print(f"Wrote {label} of run {step.record.run_id} to {path} ({written})")


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
