"""``qflow new``: the project wizard. Every question has a flag; ``--yes`` takes the defaults."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qflow.cli import console

if TYPE_CHECKING:
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
    """Ask on the terminal as the white paper shows: ``Question (a, b, c) [default]: ``, the
    choices and the default coloured as rich's prompts are; a blank answer takes the default
    and an answer not among the choices is asked again."""
    from rich.text import Text

    shown = Text(question)
    if choices:
        shown.append(" (").append(", ".join(choices), style="prompt.choices").append(")")
    shown.append(" ").append(f"[{default}]", style="prompt.default").append(": ")
    while True:
        try:
            answer = console.out.input(shown).strip() or default
        except EOFError:  # stdin ended: nobody is there to answer
            console.out.print()
            raise typer.Abort() from None
        if not choices or answer in choices:
            return answer
        echo(f"Error: {answer!r} is not one of {', '.join(choices)}.")


def echo(text: str) -> None:
    """A line of the dialogue, highlighted as rich does (quoted names, numbers, paths)."""
    from rich.markup import escape

    if text.startswith("Error: "):
        console.out.print(f"[bold red]Error:[/] {escape(text[7:])}", highlight=True)
    else:
        console.out.print(escape(text), highlight=True)


def success(text: str) -> None:
    """A ``SUCCESS: …`` line of the white paper's dialogue."""
    from rich.markup import escape

    console.out.print(f"[bold green]SUCCESS:[/] {escape(text)}", highlight=True)


def given(**answers: str | None) -> dict[str, str | None]:
    """The option answers that were given as flags."""
    return {key: value for key, value in answers.items() if value is not None}


def ask_name(ask: Ask, parent: Path) -> str:
    """The project's name, asked until it is one ``qflow new`` can use."""
    from qflow.errors import QFlowError
    from qflow.scaffold import check_project_name

    while True:
        name = ask("Name of the project", "example", None)
        try:
            check_project_name(name, parent)
        except QFlowError as exc:
            echo(f"Error: {str(exc).splitlines()[0]}")
            continue
        return name


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
    """Create a project as the white paper's Fig. 1 shows: tracker, then QFlow's executor.

    The project gets conf/, an example workflow, tests, a notebook, data/ folders, pinned
    dependencies and a first git commit."""
    from qflow.errors import QFlowError
    from qflow.scaffold import WORKFLOW, check_project_name
    from qflow.scaffold.wizard import Given, new_project

    ask: Ask | None = None if yes else prompt
    parent = directory.resolve()
    if project_name is None:
        if ask is None:
            raise QFlowError("qflow new --yes needs --project-name NAME.")
        project_name = ask_name(ask, parent)
    check_project_name(project_name, parent)
    tracker_given = Given(
        tracker,
        tracker_config_name,
        given(
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            project=wandb_project,
            entity=wandb_entity,
            mode=wandb_mode,
        ),
    )
    executor_given = Given(
        executor, executor_config_name, given(workers=workers, address=ray_address)
    )
    made = new_project(
        project_name,
        parent,
        tracker=tracker_given,
        executor=executor_given,
        ask=ask,
        echo=echo,
        success=success,
    )
    commit = f", first commit {made.commit}" if made.commit else ""
    console.out.print(
        f"Project {project_name} is in {made.root} (tracker: "
        f"{made.component('tracker').config_name}, executor: "
        f"{made.component('executor').config_name}{commit}).",
        highlight=False,
    )
    console.out.print(
        f"Next: cd {made.root} && pip install -e . && qflow run {WORKFLOW}", highlight=False
    )
