"""Write a new project from the templates in ``qflow/scaffold/templates/project``.

The project is built in a hidden temporary folder next to the target and renamed into place
at the end, so a failure never leaves a half-written project behind.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from qflow.errors import InvalidNameError, QFlowError
from qflow.scaffold.components import (
    ALWAYS,
    Component,
    default_component,
    set_default,
    write_component,
)
from qflow.scaffold.lock import installed_version, lock_text, pin

WORKFLOW = "logistic_regression"
"""The example workflow every new project starts with."""

_PACKAGE_SLOT = "__package__"
_SUFFIX = ".tmpl"
_RENAMES = {"gitignore": ".gitignore", "gitkeep": ".gitkeep"}


TEMPLATE_IMPORTS: dict[str, str] = {
    "qflow": "qflow-framework",
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "joblib": "joblib",
    "pytest": "pytest",
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "yaml": "PyYAML",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "ray": "ray",
}
"""Import name → distribution of what a new project needs, installed here or not (its
dependencies, their main dependencies and the trackers' and executors' extras)."""

_RESERVED = ("tests", "test", "conf", "data", "notebooks")
"""Folder names of the template itself."""


def _shadowing(name: str) -> str | None:
    """Why package ``name`` would hide (or be hidden by) a module the project needs, or None."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"is a Python keyword, so `import {name}` cannot work"
    if name in sys.stdlib_module_names:
        return f"would shadow the standard library module {name!r}"
    if name in TEMPLATE_IMPORTS:
        return (
            f"would shadow the package {name!r} of {TEMPLATE_IMPORTS[name]}, a dependency of "
            f"every new project: `import {name}` would find one of the two and the first "
            "qflow run would fail with an ImportError"
        )
    if name in _RESERVED:
        return f"is a folder of the project itself ({name}/)"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin not in (None, "namespace"):
        owners = importlib.metadata.packages_distributions().get(name, [])
        owner = f" (distribution {', '.join(sorted(set(owners)))})" if owners else ""
        return (
            f"would shadow the installed module {name!r}{owner}: `import {name}` would find "
            "one of the two, and code that needs the other would fail"
        )
    if installed_version(name) is not None:
        return (
            f"is the name of the installed distribution {name!r}: `pip install -e .` "
            "would replace it"
        )
    return None


def suggest_name(name: str, parent: Path) -> str:
    """A usable project name close to ``name`` (``pandas`` → ``pandas_project``)."""
    base = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    if not base.isascii() or not base or not (base[0].isalpha() or base[0] == "_"):
        base = f"my_{base}" if base.isascii() and base else "my_project"
    for candidate in (base, f"{base}_project", f"my_{base}", f"{base}_flow"):
        if (
            candidate.isidentifier()
            and _shadowing(candidate) is None
            and not (parent / candidate).exists()
        ):
            return candidate
    return "my_project"


def check_project_name(name: str, parent: Path) -> Path:
    """The target folder for project ``name``, or an error that says what to change."""
    if not name.isidentifier() or not name.isascii():
        raise InvalidNameError(
            f"Project name {name!r} is not a valid Python package name: use ASCII letters, "
            f"digits and underscores, not starting with a digit. Nothing was written.\n"
            f"Hint: qflow new --project-name {suggest_name(name, parent)}"
        )
    reason = _shadowing(name)
    if reason is not None:
        raise InvalidNameError(
            f"Project name {name!r} {reason}. Nothing was written.\n"
            f"Hint: qflow new --project-name {suggest_name(name, parent)}"
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


def _dependencies(extras: Sequence[str]) -> tuple[list[str], list[str]]:
    from qflow import __version__

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


def _values(name: str, chosen: dict[str, Component], extras: Sequence[str]) -> dict[str, str]:
    runtime, dev = _dependencies(extras)
    python = ".".join(map(str, sys.version_info[:2]))
    return {
        "name": name,
        "workflow": WORKFLOW,
        "dependencies": _toml_list(runtime),
        "dev_dependencies": _toml_list(dev),
        "python": "3.11" if sys.version_info >= (3, 11) else python,
        "tracker": chosen["tracker"].config_name,
        "executor": chosen["executor"].config_name,
        "qflow_version": installed_version("qflow-framework") or "",
    }


def _write_lock(root: Path, extras: Sequence[str]) -> None:
    roots = [("qflow-framework", extras), ("scikit-learn", ()), ("numpy", ()), ("pytest", ())]
    (root / "requirements.lock").write_text(lock_text(roots), encoding="utf-8")


def create_project(
    name: str,
    parent: Path,
    components: Sequence[Component] = (),
    *,
    extras_for: Sequence[Component] = (),
    commit: bool = True,
) -> Path:
    """Write project ``name`` under ``parent`` with the chosen components; return its folder.

    ``extras_for`` are components configured later whose extras the dependencies need now.
    With ``commit``, the project gets a git repository and a first commit (``initial_commit``).
    """
    parent = parent.resolve()
    target = check_project_name(name, parent)
    chosen = {c.group: c for c in components}
    for group, defaults in ALWAYS.items():
        chosen.setdefault(group, default_component(group, defaults[0], name))
    extras = _extras([*chosen.values(), *extras_for])
    values = _values(name, chosen, extras)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        _write_templates(staging, values)
        conf = staging / "conf"
        for group, defaults in ALWAYS.items():
            for kind in defaults:
                write_component(conf, default_component(group, kind, name))
        for component in chosen.values():
            write_component(conf, component)
        _write_lock(staging, extras)
        if target.exists():
            raise QFlowError(f"Cannot create project {name!r}: {target} appeared meanwhile.")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if commit:
        initial_commit(target)
    return target


def add_component(root: Path, component: Component) -> None:
    """Write ``component`` into a new project, make it the default and, if it needs an extra
    the dependencies lack (``ray``), pin that too."""
    write_component(root / "conf", component)
    set_default(root / "conf", component.group, component.config_name)
    extras = _extras([component])
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    present = re.search(r'"qflow-framework(?:\[(?P<extras>[^\]]*)\])?==', text)
    have = set(present["extras"].split(",")) if present and present["extras"] else set()
    if present is None or set(extras) <= have:
        return
    wanted = sorted(have | set(extras))
    runtime, _ = _dependencies(wanted)
    text = text.replace(present.group(0), f'"{runtime[0].partition("==")[0]}==', 1)
    pyproject.write_text(text, encoding="utf-8")
    _write_lock(root, wanted)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
    )


def initial_commit(root: Path) -> str | None:
    """``git init`` and a first commit of ``root``; the commit's short hash, or None when git
    is missing or ``root`` is inside a repository already (its files are that repo's then).

    Provenance records the commit of every run. With no identity configured (CI), the
    repository gets a local one, so the commit works anywhere."""
    if shutil.which("git") is None:
        return None
    if _git(root, "rev-parse", "--is-inside-work-tree").returncode == 0:
        return None
    steps: list[tuple[str, ...]] = [("-c", "init.defaultBranch=main", "init", "--quiet")]
    for key, value in (("user.name", "QFlow"), ("user.email", "qflow@localhost")):
        steps.append(("config", key, value))
    steps += [
        ("add", "--all"),
        ("commit", "--quiet", "--no-verify", "-m", "Initial commit (qflow new)"),
    ]
    for args in steps:
        if args[0] == "config" and _git(root, "config", args[1]).stdout.strip():
            continue  # the user's own identity (global or system) wins
        done = _git(root, *args)
        if done.returncode != 0:
            shutil.rmtree(root / ".git", ignore_errors=True)
            raise QFlowError(
                f"git {' '.join(args)} failed in {root}: {done.stderr.strip()}\n"
                "Hint: the project itself is complete; run git init there yourself."
            )
    return _git(root, "rev-parse", "--short", "HEAD").stdout.strip() or None


def _write_templates(root: Path, values: dict[str, str]) -> None:
    templates = resources.files("qflow.scaffold") / "templates" / "project"
    for relative, source in _walk(templates):
        parts = [values["name"] if p == _PACKAGE_SLOT else p for p in relative.split("/")]
        parts[-1] = _RENAMES.get(parts[-1].removesuffix(_SUFFIX), parts[-1].removesuffix(_SUFFIX))
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(source.read_text(encoding="utf-8"), values), encoding="utf-8")
