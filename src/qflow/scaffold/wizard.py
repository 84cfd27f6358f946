"""The dialogue of ``qflow new`` and ``qflow configure``: the white paper's Fig. 1, line for line.

```
Tracker to configure (mlflow, wandb, filetracker) [filetracker]: mlflow
SUCCESS: Project 'example' is created successfully.
Configuring the component: 'mlflow':
Name of the new configuration [mlflow]:
Address of local or remote tracking server [.qflow/tracker/mlflow]:
Address of local or remote model registry server [null]:
SUCCESS: Component mlflow configured
SUCCESS: Project 'example' is configured.
```

then QFlow's own questions (the executor), in the same form. Every answer can be given up
front (a command-line flag, ``Given``); with ``ask=None`` (``--yes``) the defaults are taken
without asking. Flags are checked before anything is written; an answer typed at a prompt
that does not fit is explained and asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.scaffold.components import (
    DEFAULT_KIND,
    KINDS,
    Component,
    Kind,
    check_config_name,
    default_component,
    kind_of,
    parse_value,
)
from qflow.scaffold.project import add_component, create_project, initial_commit

Ask = Callable[[str, str, Sequence[str] | None], str]
"""(question, default, choices or None) → the answer; shown as ``Question (a, b) [default]: ``."""

Echo = Callable[[str], None]


def _quiet(text: str) -> None:
    """An ``Echo`` that shows nothing."""


@dataclass(frozen=True)
class Given:
    """Answers for one component given as flags: they are not asked again."""

    kind: str | None = None
    config_name: str | None = None
    options: Mapping[str, str | None] = field(default_factory=dict)

    def check(self, group: str) -> None:
        """Refuse a flag that cannot work, before anything is written."""
        kinds = (
            [kind_of(group, self.kind)] if self.kind is not None else list(KINDS[group].values())
        )
        if self.config_name is not None:
            check_config_name(self.config_name)
        for kind in kinds:
            for option in kind.options:
                if option.key in self.options:
                    parse_value(option, self.options[option.key])


def _shown(value: Any) -> str:
    return "null" if value is None else str(value)


def choose_kind(
    group: str, kind: str | None, ask: Ask | None, default_kind: str | None = None
) -> Kind:
    """``kind`` if given, else asked: ``Tracker to configure (mlflow, wandb, filetracker)``."""
    if kind is None:
        kinds = list(KINDS[group])
        kind = default_kind if default_kind in KINDS[group] else DEFAULT_KIND[group]
        if ask is not None:
            kind = ask(f"{group.capitalize()} to configure", kind, kinds)
    return kind_of(group, kind)


def _asked(ask: Ask, echo: Echo, question: str, default: str, parse: Callable[[str], Any]) -> Any:
    while True:
        try:
            return parse(ask(question, default, None))
        except ConfigError as exc:
            echo(f"Error: {exc}")


def configure_component(
    kind: Kind,
    given: Given = Given(),
    *,
    ask: Ask | None = None,
    echo: Echo = _quiet,
    success: Echo = _quiet,
    project: str = "",
) -> Component:
    """Configure one component of ``kind``: its config's name and each option not given."""
    values = dict(default_component(kind.group, kind.name, project).values)
    config_name = given.config_name
    if kind.options and ask is not None:
        echo(f"Configuring the component: {kind.name!r}:")
        if config_name is None:
            config_name = _asked(
                ask, echo, "Name of the new configuration", kind.name, check_config_name
            )
    for option in kind.options:
        if option.key in given.options:
            values[option.key] = parse_value(option, given.options[option.key])
        elif ask is not None:
            values[option.key] = _asked(
                ask,
                echo,
                option.question,
                _shown(values[option.key]),
                lambda text, option=option: parse_value(option, text),  # type: ignore[misc]
            )
    component = Component(kind, check_config_name(config_name or kind.name), values)
    success(f"Component {kind.name} configured")
    return component


def ask_component(
    group: str,
    *,
    kind: str | None = None,
    config_name: str | None = None,
    answers: Mapping[str, str | None] | None = None,
    ask: Ask | None = None,
    echo: Echo = _quiet,
    success: Echo = _quiet,
    project: str = "",
    default_kind: str | None = None,
) -> Component:
    """Choose and configure one component of ``group`` (``qflow configure``)."""
    given = Given(kind, config_name, dict(answers or {}))
    given.check(group)
    chosen = choose_kind(group, kind, ask, default_kind)
    return configure_component(chosen, given, ask=ask, echo=echo, success=success, project=project)


@dataclass(frozen=True)
class NewProject:
    """What ``new_project`` made."""

    root: Path
    components: tuple[Component, ...]
    commit: str | None
    """The first commit's short hash; None without git or inside a repository."""

    def component(self, group: str) -> Component:
        return next(c for c in self.components if c.group == group)


def new_project(
    name: str,
    parent: Path,
    *,
    tracker: Given = Given(),
    executor: Given = Given(),
    ask: Ask | None = None,
    echo: Echo = _quiet,
    success: Echo = _quiet,
) -> NewProject:
    """The paper's dialogue: choose the tracker, create the project, configure the tracker;
    then QFlow's executor; then the first commit."""
    tracker.check("tracker")
    executor.check("executor")
    tracker_kind = choose_kind("tracker", tracker.kind, ask)
    later = [default_component("executor", executor.kind)] if executor.kind else []
    root = create_project(
        name,
        parent,
        extras_for=[default_component("tracker", tracker_kind.name), *later],
        commit=False,
    )
    success(f"Project {name!r} is created successfully.")
    chosen_tracker = configure_component(
        tracker_kind, tracker, ask=ask, echo=echo, success=success, project=name
    )
    add_component(root, chosen_tracker)
    success(f"Project {name!r} is configured.")
    executor_kind = choose_kind("executor", executor.kind, ask)
    chosen_executor = configure_component(
        executor_kind, executor, ask=ask, echo=echo, success=success, project=name
    )
    add_component(root, chosen_executor)
    commit = initial_commit(root)
    return NewProject(root, (chosen_tracker, chosen_executor), commit)
