"""``qflow configure COMPONENT``: reconfigure a project's tracker or executor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.commands.new import (
    ExecutorNameOption,
    ExecutorOption,
    RayAddressOption,
    RegistryUriOption,
    TrackerNameOption,
    TrackerOption,
    TrackingUriOption,
    WandbEntityOption,
    WandbModeOption,
    WandbProjectOption,
    WorkersOption,
    YesOption,
    echo,
    given,
    prompt,
    success,
)
from qflow.cli.options import ProjectOption


def _group_and_kind(component: str) -> tuple[str, str | None]:
    from qflow.errors import ConfigError, did_you_mean
    from qflow.scaffold.components import KINDS

    if component in KINDS:
        return component, None
    for group, kinds in KINDS.items():
        if component in kinds:
            return group, component
    choices = [*KINDS, *(k for kinds in KINDS.values() for k in kinds)]
    raise ConfigError(
        f"Unknown component {component!r}. Configure one of: {', '.join(KINDS)} "
        f"(or name a kind: {', '.join(choices[len(KINDS) :])}).{did_you_mean(component, choices)}"
    )


def _current_kind(conf_dir: Path, group: str) -> str | None:
    import yaml

    from qflow.scaffold import current_default

    name = current_default(conf_dir, group)
    path = conf_dir / group / f"{name}.yaml"
    if name is None or not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return str(data.get("name")) if isinstance(data, dict) and data.get("name") else None


def configure(
    component: Annotated[
        str, typer.Argument(help="tracker or executor, or a kind (mlflow, wandb, parallel …).")
    ],
    tracker: TrackerOption = None,
    tracker_config_name: TrackerNameOption = None,
    tracking_uri: TrackingUriOption = None,
    registry_uri: RegistryUriOption = None,
    wandb_project: WandbProjectOption = None,
    wandb_entity: WandbEntityOption = None,
    wandb_mode: WandbModeOption = None,
    executor: ExecutorOption = None,
    executor_config_name: ExecutorNameOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    yes: YesOption = False,
    project: ProjectOption = None,
) -> None:
    """Choose and configure COMPONENT again: rewrites conf/<group>/ and the workflow defaults."""
    from qflow.config import find_project
    from qflow.errors import QFlowError
    from qflow.scaffold import ask_component, set_default, write_component

    group, kind = _group_and_kind(component)
    found = find_project(project)
    conf_dir = found.conf_dir
    if not conf_dir.is_dir():
        raise QFlowError(
            f"{found.root} has no conf/ folder to configure.\n"
            "Hint: run this inside a project made by qflow new, or pass -C PROJECT."
        )
    if group == "tracker":
        kind = kind or tracker
        config_name = tracker_config_name
        answers = given(
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            project=wandb_project,
            entity=wandb_entity,
            mode=wandb_mode,
        )
    else:
        kind = kind or executor
        config_name = executor_config_name
        answers = given(workers=workers, address=ray_address)
    chosen = ask_component(
        group,
        kind=kind,
        config_name=config_name,
        answers=answers,
        ask=None if yes else prompt,
        echo=echo,
        success=success,
        project=found.name,
        default_kind=_current_kind(conf_dir, group),
    )
    path = write_component(conf_dir, chosen)
    changed = set_default(conf_dir, group, chosen.config_name)
    console.out.print(f"Wrote {path.relative_to(found.root)}", highlight=False)
    if changed:
        names = ", ".join(p.name for p in changed)
        console.out.print(f"Default {group} is now {chosen.config_name!r} in: {names}")
    else:
        console.err.print(
            f"No workflow config in {conf_dir} picks a {group}; add "
            f"'- {group}: {chosen.config_name}' to its defaults list."
        )
