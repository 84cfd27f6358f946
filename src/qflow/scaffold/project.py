"""Write a new project from the templates in ``qflow/scaffold/templates/project``.

The project is built in a hidden temporary folder next to the target and renamed into place
at the end, so a failure never leaves a half-written project behind.
"""

from __future__ import annotations

import keyword
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from qflow.errors import InvalidNameError, QFlowError
from qflow.scaffold.components import ALWAYS, Component, default_component, write_component
from qflow.scaffold.lock import installed_version, lock_text, pin

WORKFLOW = "logistic_regression"
"""The example workflow every new project starts with."""

_PACKAGE_SLOT = "__package__"
_SUFFIX = ".tmpl"
_RENAMES = {"gitignore": ".gitignore"}


def check_project_name(name: str, parent: Path) -> Path:
    """The target folder for project ``name``, or an error that says what to change."""
    if not name.isidentifier() or not name.isascii():
        suggestion = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        if not suggestion.isidentifier() or not suggestion.isascii():
            suggestion = "my_project"
        raise InvalidNameError(
            f"Project name {name!r} is not a valid Python package name: use ASCII letters, "
            f"digits and underscores, not starting with a digit. Nothing was written.\n"
            f"Hint: qflow new --project-name {suggestion}"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise InvalidNameError(
            f"Project name {name!r} is a Python keyword, so `import {name}` cannot work. "
            f"Hint: qflow new --project-name {name}_project"
        )
    if name in sys.stdlib_module_names or name in ("qflow", "tests", "test"):
        raise InvalidNameError(
            f"Project name {name!r} would shadow the module {name!r} that Python or QFlow "
            f"already import. Hint: qflow new --project-name my_{name}"
        )
    target = parent / name
    if target.exists():
        raise QFlowError(
            f"Cannot create project {name!r}: {target} already exists. Nothing was written.\n"
            "Hint: choose another --project-name, or --directory for another parent folder."
        )
    if not parent.is_dir():
        raise QFlowError(f"Cannot create project {name!r}: folder {parent} does not exist.")
    return target


def _walk(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    files: list[tuple[str, Traversable]] = []
    for item in folder.iterdir():
        if item.name == "__pycache__":
            continue
        relative = f"{prefix}{item.name}"
        if item.is_dir():
            files.extend(_walk(item, f"{relative}/"))
        else:
            files.append((relative, item))
    return files


def _extras(components: Sequence[Component]) -> list[str]:
    return sorted({c.kind.extra for c in components if c.kind.extra} & _qflow_extras())


def _dependencies(components: Sequence[Component]) -> tuple[list[str], list[str]]:
    from qflow import __version__

    extras = _extras(components)
    suffix = f"[{','.join(extras)}]" if extras else ""
    runtime = [
        f"qflow-framework{suffix}=={__version__}",
        pin("scikit-learn", "scikit-learn>=1.4"),
        pin("numpy", "numpy>=1.26"),
    ]
    dev = [pin("pytest", "pytest>=8")]
    return runtime, dev


def _qflow_extras() -> set[str]:
    import importlib.metadata

    try:
        meta = importlib.metadata.metadata("qflow-framework")
    except importlib.metadata.PackageNotFoundError:
        return set()
    return set(meta.get_all("Provides-Extra") or [])


def _toml_list(items: Sequence[str]) -> str:
    return "".join(f'    "{item}",\n' for item in items)


def render(text: str, values: dict[str, str]) -> str:
    """Replace ``{{ key }}`` slots; the templates use no other syntax."""
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", value)
    return text


def create_project(
    name: str,
    parent: Path,
    components: Sequence[Component] = (),
) -> Path:
    """Write project ``name`` under ``parent`` with the chosen components; return its folder."""
    parent = parent.resolve()
    target = check_project_name(name, parent)
    chosen = {c.group: c for c in components}
    for group, defaults in ALWAYS.items():
        chosen.setdefault(group, default_component(group, defaults[0], name))
    runtime, dev = _dependencies(list(chosen.values()))
    python = ".".join(map(str, sys.version_info[:2]))
    values = {
        "name": name,
        "workflow": WORKFLOW,
        "dependencies": _toml_list(runtime),
        "dev_dependencies": _toml_list(dev),
        "python": "3.11" if sys.version_info >= (3, 11) else python,
        "tracker": chosen["tracker"].config_name,
        "executor": chosen["executor"].config_name,
        "qflow_version": installed_version("qflow-framework") or "",
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        _write_templates(staging, values)
        conf = staging / "conf"
        for group, defaults in ALWAYS.items():
            for kind in defaults:
                write_component(conf, default_component(group, kind, name))
        for component in chosen.values():
            write_component(conf, component)
        extras = _extras(list(chosen.values()))
        roots = [("qflow-framework", extras), ("scikit-learn", ()), ("numpy", ()), ("pytest", ())]
        (staging / "requirements.lock").write_text(lock_text(roots), encoding="utf-8")
        if target.exists():
            raise QFlowError(f"Cannot create project {name!r}: {target} appeared meanwhile.")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_templates(root: Path, values: dict[str, str]) -> None:
    templates = resources.files("qflow.scaffold") / "templates" / "project"
    for relative, source in _walk(templates):
        parts = [values["name"] if p == _PACKAGE_SLOT else p for p in relative.split("/")]
        parts[-1] = _RENAMES.get(parts[-1].removesuffix(_SUFFIX), parts[-1].removesuffix(_SUFFIX))
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(source.read_text(encoding="utf-8"), values), encoding="utf-8")
