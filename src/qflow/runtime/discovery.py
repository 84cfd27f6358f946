"""Find a workflow by ``module:function``, ``path/file.py:function`` or a project name."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from qflow.config.project import Project
from qflow.dsl.workflow import Workflow
from qflow.errors import WorkflowNotFoundError, did_you_mean


def _add_paths(project: Project) -> None:
    for folder in (project.root / "src", project.root):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _import(module: str, project: Project) -> ModuleType:
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.is_file():
            raise WorkflowNotFoundError(f"Workflow file {module!r} does not exist.")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise WorkflowNotFoundError(f"Cannot import workflow file {module!r}.")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return loaded
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise WorkflowNotFoundError(
                f"Module {module!r} cannot be imported: {exc}. Hint: run qflow from the "
                "project folder, or install the project (pip install -e .)."
            ) from None
        raise


def _with_submodules(module: ModuleType) -> list[ModuleType]:
    """``module`` and, for a package, every module under it (``workflows/*.py``), sorted."""
    modules = [module]
    path = getattr(module, "__path__", None)
    if path is not None:
        for info in sorted(
            pkgutil.walk_packages(path, f"{module.__name__}."), key=lambda info: info.name
        ):
            modules.append(importlib.import_module(info.name))
    return modules


def workflow_modules(project: Project) -> tuple[str, ...]:
    """The modules to search: ``[tool.qflow] workflow-modules``, else the project's
    ``<package>.workflows`` package when there is one (``src/<package>/workflows/``)."""
    if project.workflow_modules or project.workflows:
        return project.workflow_modules
    package = project.name.replace("-", "_").replace(".", "_")
    if package.isidentifier():
        for folder in (project.root / "src", project.root):
            if (folder / package / "workflows").is_dir():
                return (f"{package}.workflows",)
    return ()


def project_workflows(project: Project) -> dict[str, Workflow[..., Any]]:
    """Every workflow the project declares, by name; a package listed in workflow-modules
    stands for every module under it, so a new ``workflows/*.py`` needs no registration."""
    _add_paths(project)
    found: dict[str, Workflow[..., Any]] = {}
    for module_name in workflow_modules(project):
        for module in _with_submodules(_import(module_name, project)):
            for value in vars(module).values():
                if isinstance(value, Workflow):
                    found[value.name] = value
    for name, spec in project.workflows.items():
        found[name] = load_workflow(spec, project)
    return found


def load_workflow(spec: str, project: Project) -> Workflow[..., Any]:
    """The workflow ``spec`` names; unknown names list the close matches."""
    _add_paths(project)
    if ":" in spec:
        module_name, _, attribute = spec.rpartition(":")
        module = _import(module_name, project)
        value = getattr(module, attribute, None)
        if not isinstance(value, Workflow):
            candidates = [k for k, v in vars(module).items() if isinstance(v, Workflow)]
            raise WorkflowNotFoundError(
                f"{spec!r}: {module_name} has no workflow named {attribute!r}. "
                f"Workflows there: {', '.join(candidates) or '(none)'}."
                f"{did_you_mean(attribute, candidates)}"
            )
        return value
    known = project_workflows(project)
    if spec in known:
        return known[spec]
    raise WorkflowNotFoundError(
        f"No workflow named {spec!r} in project {project.name or project.root}. "
        f"Known workflows: {', '.join(sorted(known)) or '(none)'}.{did_you_mean(spec, known)}\n"
        "Hint: name it as module:function, or put its module under a package listed in "
        "[tool.qflow] workflow-modules in pyproject.toml (every module there is searched)."
    )
