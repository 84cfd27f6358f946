"""Where a project lives and what it declares in ``pyproject.toml`` under ``[tool.qflow]``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from qflow.errors import ConfigError, NotAProjectError


@dataclass(frozen=True)
class Project:
    """A QFlow project: its root, config folder and the modules that define workflows."""

    root: Path
    name: str = ""
    workflow_modules: tuple[str, ...] = ()
    workflows: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    """``[tool.qflow] log-level``: the level at which steps' log records are kept
    (``QFLOW_LOG_LEVEL`` overrides it for one command)."""
    keep_data_files: bool = False
    """``[tool.qflow] keep-data-files``: keep every ``qf.DataFile``'s content (as
    ``qf.DataFile(path, keep=True)`` does for one)."""
    keep_data_max: int = 100_000_000
    """``[tool.qflow] keep-data-max``: data files up to this many bytes are kept."""

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def state_dir(self) -> Path:
        return self.root / ".qflow"


STORE_VARIABLES = ("QFLOW_STORE", "QFLOW_TRACKING_URI")
"""Environment variables that point a project at stores outside its folder."""


def find_project(start: Path | None = None) -> Project:
    """The nearest folder up from ``start`` with a ``[tool.qflow]`` table, else ``start``."""
    start = (start or Path.cwd()).resolve()
    return _search(start) or Project(root=start, name=start.name)


def existing_project(start: Path | None = None) -> Project:
    """Like ``find_project``, for commands that only read what runs recorded: the project
    must exist (or ``QFLOW_STORE`` / ``QFLOW_TRACKING_URI`` must name its store), else
    ``NotAProjectError``, so reading never creates a store in a random folder."""
    folder = (start or Path.cwd()).absolute()
    if not folder.is_dir():
        raise NotAProjectError.for_folder(folder, missing=True)
    folder = folder.resolve()
    found = _search(folder)
    if found is not None:
        return found
    if any(os.environ.get(name) for name in STORE_VARIABLES):
        return Project(root=folder, name=folder.name)
    raise NotAProjectError.for_folder(folder)


def _search(start: Path) -> Project | None:
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{pyproject} is not valid TOML: {exc}.") from None
            table = data.get("tool", {}).get("qflow")
            if table is not None:
                return _project_from(folder, data, table, pyproject)
        if (folder / ".qflow").is_dir():
            return Project(root=folder, name=folder.name)
    return None


def _project_from(folder: Path, data: dict[str, object], table: object, source: Path) -> Project:
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.qflow] in {source} must be a table.")
    modules = table.get("workflow-modules", [])
    named = table.get("workflows", {})
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ConfigError(
            f"[tool.qflow] workflow-modules in {source} must be a list of module names, "
            'for example workflow-modules = ["example.workflows"].'
        )
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
        raise ConfigError(
            f"[tool.qflow] workflows in {source} must map names to 'module:function', "
            'for example workflows = { train = "example.workflows:train" }.'
        )
    level = table.get("log-level", "INFO")
    if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"[tool.qflow] log-level in {source} is {level!r}; it must be one of "
            f'{", ".join(LOG_LEVELS)}, for example log-level = "DEBUG".'
        )
    keep = table.get("keep-data-files", False)
    keep_max = table.get("keep-data-max", 100_000_000)
    if not isinstance(keep, bool):
        raise ConfigError(
            f"[tool.qflow] keep-data-files in {source} is {keep!r}; it must be true or false."
        )
    if not isinstance(keep_max, int) or isinstance(keep_max, bool) or keep_max < 0:
        raise ConfigError(
            f"[tool.qflow] keep-data-max in {source} is {keep_max!r}; it must be a number of "
            "bytes, for example keep-data-max = 1_000_000_000 (1 GB)."
        )
    project_table = data.get("project", {})
    name = project_table.get("name", folder.name) if isinstance(project_table, dict) else ""
    return Project(folder, str(name), tuple(modules), dict(named), level.upper(), keep, keep_max)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
