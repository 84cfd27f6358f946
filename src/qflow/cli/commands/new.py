"""``qflow new``: the project wizard. Every question has a flag; ``--yes`` takes the defaults."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qflow.cli import console

if TYPE_CHECKING:
    from qflow.scaffold import Component
    from qflow.scaffold.wizard import Ask

TrackerOption = Annotated[
    str | None, typer.Option("--tracker", help="filetracker, mlflow or wandb.")
]
TrackerNameOption = Annotated[
    str | None,
    typer.Option("--tracker-config-name", help="Name of the tracker's config (conf/tracker/)."),
]
TrackingUriOption = Annotated[
    str | None, typer.Option("--tracking-uri", help="MLflow tracking server address.")
]
RegistryUriOption = Annotated[
    str | None, typer.Option("--registry-uri", help="MLflow model registry address ('none').")
]
WandbProjectOption = Annotated[str | None, typer.Option("--wandb-project", help="W&B project.")]
WandbEntityOption = Annotated[str | None, typer.Option("--wandb-entity", help="W&B entity.")]
WandbModeOption = Annotated[
    str | None, typer.Option("--wandb-mode", help="W&B mode: online, offline, disabled.")
]
ExecutorOption = Annotated[str | None, typer.Option("--executor", help="local, parallel or ray.")]
ExecutorNameOption = Annotated[
    str | None,
    typer.Option("--executor-config-name", help="Name of the executor's config (conf/executor/)."),
]
WorkersOption = Annotated[
    str | None, typer.Option("--workers", help="Parallel worker processes ('none': one per CPU).")
]
RayAddressOption = Annotated[
    str | None, typer.Option("--ray-address", help="Ray cluster address ('none': local).")
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Take the default for every question not given.")
]


def prompt(question: str, default: str, choices: Sequence[str] | None) -> str:
    """Ask on the terminal: ``Question [default]: ``; an answer not among choices is asked again."""
    while True:
        answer = str(typer.prompt(question, default=default)).strip()
        if not choices or answer in choices:
            return answer
        typer.echo(f"Error: {answer!r} is not one of {', '.join(choices)}.")


def echo(text: str) -> None:
    typer.echo(text)


def given(**answers: str | None) -> dict[str, str | None]:
    """The option answers that were given as flags."""
    return {key: value for key, value in answers.items() if value is not None}


def ask_tracker(
    ask: Ask | None,
    project: str,
    tracker: str | None,
    config_name: str | None,
    answers: dict[str, str | None],
    default_kind: str | None = None,
) -> Component:
    from qflow.scaffold import ask_component

    return ask_component(
        "tracker",
        kind=tracker,
        config_name=config_name,
        answers=answers,
        ask=ask,
        echo=echo,
        project=project,
        default_kind=default_kind,
    )


def new(
    project_name: Annotated[
        str | None, typer.Option("--project-name", "-n", help="Name of the project (a package).")
    ] = None,
    directory: Annotated[
        Path, typer.Option("--directory", "-d", help="Folder to create the project in.")
    ] = Path("."),
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
) -> None:
    """Create a project: conf/ tree, example workflow, tests, notebook, pinned dependencies."""
    from qflow.errors import QFlowError
    from qflow.scaffold import WORKFLOW, ask_component, check_project_name, create_project

    ask: Ask | None = None if yes else prompt
    if project_name is None:
        if ask is None:
            raise QFlowError("qflow new --yes needs --project-name NAME.")
        project_name = ask("Name of the project", "example", None)
    check_project_name(project_name, directory.resolve())
    tracker_answers = given(
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        project=wandb_project,
        entity=wandb_entity,
        mode=wandb_mode,
    )
    chosen_tracker = ask_tracker(ask, project_name, tracker, tracker_config_name, tracker_answers)
    chosen_executor = ask_component(
        "executor",
        kind=executor,
        config_name=executor_config_name,
        answers=given(workers=workers, address=ray_address),
        ask=ask,
        echo=echo,
        project=project_name,
    )
    target = create_project(project_name, directory, [chosen_tracker, chosen_executor])
    console.out.print(
        f"Created project [bold]{project_name}[/] in {target} "
        f"(tracker: {chosen_tracker.config_name}, executor: {chosen_executor.config_name})."
    )
    console.out.print(
        f"Next: cd {target} && pip install -e . && qflow run {WORKFLOW}", highlight=False
    )
