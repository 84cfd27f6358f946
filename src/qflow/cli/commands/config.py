"""``qflow config show``: the resolved config of a workflow, with its groups' options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, OverridesArgument, ProjectOption

app = typer.Typer(
    name="config",
    help="Inspect a workflow's Hydra config.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _config_name(workflow: str, project: Path | None) -> tuple[str, Path]:
    """The config name for WORKFLOW, importing the workflow only when no file matches."""
    from qflow.config import config_file_for, find_project

    found = find_project(project)
    if ":" not in workflow and (found.conf_dir / f"{workflow}.yaml").is_file():
        return workflow, found.conf_dir
    from qflow.runtime.discovery import load_workflow

    name = load_workflow(workflow, found).name
    if config_file_for(name, found.conf_dir) is None:
        console.err.print(f"[dim]{name} has no config file in {found.conf_dir}.[/]")
    return name, found.conf_dir


@app.command("show")
def show(
    workflow: Annotated[
        str, typer.Argument(help="Workflow name (or the name of a config in conf/).")
    ],
    overrides: OverridesArgument = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Print the config a run of WORKFLOW would get, with the overrides applied."""
    import yaml

    from qflow.config import load_config
    from qflow.config.explain import config_groups

    name, conf_dir = _config_name(workflow, project)
    resolved = load_config(name, overrides or [], conf_dir)
    if as_json:
        console.print_json(resolved)
        return
    text = yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True) if resolved else "{}\n"
    console.out.out(text, end="", highlight=False)
    groups = config_groups(conf_dir)
    if groups:
        console.out.out("# config groups (pick one with GROUP=OPTION):", highlight=False)
        for group, options in groups.items():
            console.out.out(f"#   {group}: {', '.join(options)}", highlight=False)
