"""The questions of ``qflow new`` and ``qflow configure``, as in the white paper's Fig. 1.

```
Trackers: filetracker, mlflow, wandb
Select the tracker [filetracker]: mlflow
Configuring the component: 'mlflow'
Name of the configuration [mlflow]:
Address of the local or remote tracking server [.qflow/tracker/mlflow]:
Address of the model registry [none]:
Executors: local, parallel, ray
Select the executor [local]:
```

Every answer can be given up front (a command-line flag); with ``ask=None`` (``--yes``) the
defaults are taken without asking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qflow.scaffold.components import (
    KINDS,
    Component,
    check_config_name,
    default_component,
    kind_of,
    parse_value,
)

Ask = Callable[[str, str, Sequence[str] | None], str]
"""(question, default, choices or None) → the answer."""

Echo = Callable[[str], None]


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def ask_component(
    group: str,
    *,
    kind: str | None = None,
    config_name: str | None = None,
    answers: Mapping[str, str | None] | None = None,
    ask: Ask | None = None,
    echo: Echo = lambda text: None,
    project: str = "",
    default_kind: str | None = None,
) -> Component:
    """Choose and configure one component of ``group``.

    ``kind``, ``config_name`` and ``answers`` (option key → text) are answers given as flags:
    they are not asked again. ``ask=None`` takes the defaults for everything else.
    """
    answers = dict(answers or {})
    kinds = list(KINDS[group])
    if kind is None:
        fallback = default_kind if default_kind in KINDS[group] else kinds[0]
        if ask is None:
            kind = fallback
        else:
            echo(f"{group.capitalize()}s: {', '.join(kinds)}")
            kind = ask(f"Select the {group}", fallback, kinds)
    chosen = kind_of(group, kind)
    component = default_component(group, chosen.name, project)
    values = dict(component.values)
    if not chosen.options:
        return Component(chosen, check_config_name(config_name or chosen.name), values)
    if ask is not None:
        echo(f"Configuring the component: {chosen.name!r}")
    if config_name is None:
        config_name = chosen.name
        if ask is not None:
            config_name = ask("Name of the configuration", chosen.name, None)
    for option in chosen.options:
        if option.key in answers:
            values[option.key] = parse_value(option, answers[option.key])
        elif ask is not None:
            text = ask(option.question, _shown(values[option.key]), None)
            values[option.key] = parse_value(option, text)
    return Component(chosen, check_config_name(config_name), values)
