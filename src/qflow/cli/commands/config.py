"""``qflow config show``: the resolved config of a workflow, with its groups' options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, OverridesArgument, ProjectOption

app = typer.Typer(
    name="config",
    help="Inspect a workflow's Hydra config.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _config_name(workflow: str, project: Path | None) -> tuple[str, Path, Any]:
    """The config name for WORKFLOW and its conf folder, and the workflow itself when no
    config file matches (its signature then says what the config is)."""
    from qflow.config import config_file_for, find_project

    found = find_project(project)
    if ":" not in workflow and config_file_for(workflow, found.conf_dir) not in (
        None,
        config_file_for("config", found.conf_dir),
    ):
        return workflow, found.conf_dir, None
    from qflow.runtime.discovery import load_workflow

    wf = load_workflow(workflow, found)
    if config_file_for(wf.name, found.conf_dir) is not None:
        return wf.name, found.conf_dir, None
    return wf.name, found.conf_dir, wf


@app.command("show")
def show(
    workflow: Annotated[
        str, typer.Argument(help="Workflow name (or the name of a config in conf/).")
    ],
    overrides: OverridesArgument = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Print the config a run of WORKFLOW would get, with the overrides applied.

    Without conf/WORKFLOW.yaml (or .yml), the config is the workflow's parameters: their
    defaults from its signature, with the overrides applied and checked against the
    parameters' types; parameters without a default are listed as required.
    """
    import yaml

    from qflow.config import load_config
    from qflow.config.explain import config_groups

    name, conf_dir, wf = _config_name(workflow, project)
    resolved = load_config(name, overrides or [], conf_dir)
    required: list[str] = []
    if wf is not None:
        resolved, required = _from_signature(wf, resolved)
    if as_json:
        console.print_json(resolved)
        return
    text = yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True) if resolved else "{}\n"
    console.out.out(text, end="", highlight=False)
    for line in required:
        console.out.out(line, highlight=False)
    if wf is not None:
        console.err.print(f"[dim]{name} has no config file in {conf_dir}: its parameters.[/]")
    groups = config_groups(conf_dir)
    if groups:
        console.out.out("# config groups (pick one with GROUP=OPTION):", highlight=False)
        for group, options in groups.items():
            console.out.out(f"#   {group}: {', '.join(options)}", highlight=False)


def _from_signature(wf: Any, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The workflow's defaults with ``given`` over them, checked; and comment lines for the
    parameters that need a value."""
    import inspect

    from qflow.config.signature import check_parameters, parameter_types, with_defaults

    if wf.takes_config_object:
        return given, []
    resolved = with_defaults(wf.signature, {**wf.defaults(), **given})
    types = parameter_types(wf.fn, wf.signature)
    resolved = _plain(check_parameters(wf.name, types, resolved))
    required = []
    for key, param in wf.signature.parameters.items():
        if param.default is inspect.Parameter.empty and key not in resolved:
            kind = getattr(types.get(key), "__name__", None) or str(types.get(key, "any"))
            required.append(f"# {key}: required ({kind}); give it with {key}=VALUE")
    return resolved, required


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
