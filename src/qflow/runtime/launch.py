"""Start a run: resolve the workflow and config, trace, record, schedule, finish."""

from __future__ import annotations

import platform
import shlex
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qflow.config.loader import load_config
from qflow.config.project import Project, find_project
from qflow.dsl.workflow import Workflow
from qflow.errors import StepFailedError
from qflow.ids import new_run_id
from qflow.plugins.manager import create_plugin_manager
from qflow.runtime.discovery import load_workflow
from qflow.runtime.executor import create_executor
from qflow.runtime.scheduler import Scheduler


def launch(
    workflow: Workflow[..., Any] | str,
    config: Mapping[str, Any] | None = None,
    *,
    overrides: Sequence[str] = (),
    project_dir: str | Path | None = None,
    executor: str = "local",
    workers: int | None = None,
    use_cache: bool = True,
    rerun: Collection[str] = (),
    plugins: Iterable[object] = (),
    tags: Mapping[str, str] | None = None,
    command: str | None = None,
    sweep_id: str | None = None,
) -> str:
    """Run ``workflow`` and return the run id; raise ``StepFailedError`` if a step failed.

    Everything that can be wrong with the config or the workflow is found before the run is
    recorded, so a bad invocation leaves no half-made run behind.
    """
    project = find_project(Path(project_dir) if project_dir else None)
    wf = workflow if isinstance(workflow, Workflow) else load_workflow(workflow, project)
    resolved = (
        dict(config) if config is not None else load_config(wf.name, overrides, project.conf_dir)
    )
    traced = wf.trace(resolved)
    runner = create_executor(executor, **({"workers": workers} if workers else {}))
    from qflow.tracking.selection import trackers_from_config

    hooks = create_plugin_manager([*plugins, *trackers_from_config(resolved, project.root)])

    from qflow.store import open_stores

    metadata, artifacts = open_stores(project.root)
    metadata.mark_crashed_runs()
    run = metadata.create_run(
        workflow=wf.name,
        config=resolved,
        run_id=new_run_id(),
        command=command if command is not None else shlex.join(sys.argv),
        meta=_environment(project, executor),
        sweep_id=sweep_id,
    )
    if tags:
        metadata.set_tags(run.id, dict(tags))
    scheduler = Scheduler(
        traced, metadata, artifacts, runner, hooks, use_cache=use_cache, rerun=rerun
    )
    scheduler.notify(
        "before_run",
        run_id=run.id,
        workflow=wf.name,
        graph=traced.graph,
        config=resolved,
        meta=run.meta,
        artifacts=artifacts,
    )
    status: str = "failed"
    error: str | None = "interrupted"
    try:
        outcome = scheduler.run(run.id)
        status = outcome.status
        error = "; ".join(f"{k}: {v}" for k, v in outcome.failed.items()) or None
    finally:
        metadata.finish_run(run.id, status, error=error)
        scheduler.notify("after_run", run_id=run.id, status=status, error=error)
    if outcome.failed:
        first = next(iter(outcome.failed))
        raise StepFailedError(
            first,
            run.id,
            f"Run {run.id} of {wf.name!r} failed: step {first} raised {outcome.failed[first]}\n"
            f"Hint: qflow logs {run.id} {first} shows its traceback and output.",
        )
    return run.id


def _environment(project: Project, executor: str) -> dict[str, Any]:
    from qflow import __version__

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "qflow": __version__,
        "executor": executor,
        "project": str(project.root),
    }
