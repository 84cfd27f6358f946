"""Configurable components of a project (tracker, executor): their options, YAML and defaults.

A component is one option of a Hydra config group: ``conf/tracker/mlflow.yaml`` holds
``name: mlflow`` (the kind, which plugin provides it) and the kind's options, and each workflow
config picks one in its defaults list (``- tracker: mlflow``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Option:
    """One setting of a component kind, with the wizard's question and default."""

    key: str
    question: str
    default: Any = None
    kind: type = str


@dataclass(frozen=True)
class Kind:
    """A kind of component (``mlflow``), the group it belongs to and its options."""

    group: str
    name: str
    options: tuple[Option, ...] = ()
    extra: str | None = None
    """The qflow-framework extra it needs, if any."""


KINDS: dict[str, dict[str, Kind]] = {
    "tracker": {
        "mlflow": Kind(
            "tracker",
            "mlflow",
            (
                Option(
                    "tracking_uri",
                    "Address of local or remote tracking server",
                    ".qflow/tracker/mlflow",
                ),
                Option("registry_uri", "Address of local or remote model registry server"),
            ),
            extra="mlflow",
        ),
        "wandb": Kind(
            "tracker",
            "wandb",
            (
                Option("project", "Name of the W&B project", "{project}"),
                Option("entity", "W&B entity (user or team)"),
                Option("mode", "W&B mode (online, offline or disabled)", "offline"),
            ),
            extra="wandb",
        ),
        "filetracker": Kind("tracker", "filetracker"),
    },
    "executor": {
        "local": Kind("executor", "local"),
        "parallel": Kind(
            "executor",
            "parallel",
            (Option("workers", "Number of worker processes", None, int),),
        ),
        "ray": Kind(
            "executor",
            "ray",
            (Option("address", "Address of the Ray cluster"),),
            extra="ray",
        ),
    },
}
"""Group → kind name → kind, in the order the wizard lists them (the white paper's)."""

DEFAULT_KIND = {"tracker": "filetracker", "executor": "local"}
"""The kind a new project gets when nobody chooses."""

ALWAYS = {"tracker": ("filetracker",), "executor": ("local", "parallel")}
"""Group options every new project gets, so switching is one override away."""


@dataclass(frozen=True)
class Component:
    """A configured component: which kind, the config's name and the option values."""

    kind: Kind
    config_name: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.kind.group

    def to_yaml(self) -> str:
        """The group option's YAML: ``name`` (the kind) then each option."""
        lines = [f"name: {self.kind.name}"]
        for option in self.kind.options:
            lines.append(f"{option.key}: {_yaml_scalar(self.values.get(option.key))}")
        return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    import yaml

    return str(yaml.safe_dump(str(value), default_style=None)).strip().removesuffix("...").strip()


def kind_of(group: str, name: str) -> Kind:
    """The kind ``name`` of ``group``; unknown names list the choices."""
    kinds = KINDS[group]
    if name not in kinds:
        raise ConfigError(
            f"Unknown {group} {name!r}. Choices: {', '.join(kinds)}.{did_you_mean(name, kinds)}"
        )
    return kinds[name]


def default_component(group: str, name: str, project: str = "") -> Component:
    """A component of kind ``name`` with every option at its default."""
    kind = kind_of(group, name)
    values = {o.key: _default(o, project) for o in kind.options}
    return Component(kind, name, values)


def _default(option: Option, project: str) -> Any:
    if isinstance(option.default, str):
        return option.default.replace("{project}", project)
    return option.default


def parse_value(option: Option, text: str | None) -> Any:
    """A typed option value from an answer; blank, ``none`` and ``null`` are None."""
    if text is None or text.strip().lower() in ("", "none", "null", "auto"):
        return None
    text = text.strip()
    if option.kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"{option.question}: {text!r} is not a whole number (or 'none')."
            ) from None
    return text


def check_config_name(name: str) -> str:
    """A config name becomes a file name and a Hydra option: keep it simple."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(
            f"Configuration name {name!r} is not usable as a file name: use letters, digits, "
            "'_', '-' and '.', starting with a letter or digit."
        )
    return name


def write_component(conf_dir: Path, component: Component) -> Path:
    """Write ``conf/<group>/<config name>.yaml``; return its path."""
    folder = conf_dir / component.group
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{component.config_name}.yaml"
    path.write_text(component.to_yaml(), encoding="utf-8")
    return path


_DEFAULT_LINE = r"^(?P<head>\s*-\s*(?:override\s+)?{group}\s*:\s*)(?P<value>[^\s#]+)(?P<tail>.*)$"


def set_default(conf_dir: Path, group: str, config_name: str) -> list[Path]:
    """Make ``config_name`` the ``group`` default in every workflow config that picks one."""
    pattern = re.compile(_DEFAULT_LINE.format(group=re.escape(group)), re.MULTILINE)
    changed = []
    for path in sorted(conf_dir.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        updated = pattern.sub(lambda m: f"{m['head']}{config_name}{m['tail']}", text)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            changed.append(path)
        elif pattern.search(text):
            changed.append(path)
    return changed


def current_default(conf_dir: Path, group: str) -> str | None:
    """The option the workflow configs pick for ``group`` (the first one found)."""
    pattern = re.compile(_DEFAULT_LINE.format(group=re.escape(group)), re.MULTILINE)
    for path in sorted(conf_dir.glob("*.yaml")):
        match = pattern.search(path.read_text(encoding="utf-8"))
        if match:
            return match["value"]
    return None
