"""Start a run: resolve the workflow and config, trace, record, schedule, finish."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.loader import load_config
from qflow.config.project import Project, find_project
from qflow.dsl.workflow import Workflow
from qflow.errors import QFlowError, RunKilledError, StepFailedError, did_you_mean
from qflow.ids import new_run_id
from qflow.plugins.manager import create_plugin_manager
from qflow.runtime.discovery import load_workflow
from qflow.runtime.executor import create_executor
from qflow.runtime.heartbeat import Heartbeat, interrupts_end_the_run
from qflow.runtime.partial import prepare
from qflow.runtime.scheduler import Scheduler
from qflow.store.metadata.records import RunStatus, StepStatus

if TYPE_CHECKING:
    from qflow.graph.model import Graph
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import StepRun


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a run is started with: what to run, with which config, where and how.

    ``qflow run``, ``qflow run -m`` (one request per combination), ``qflow resume``,
    ``qf.run`` and sweep trials each build one and hand it to ``launch``; a multirun or a
    sweep derives its runs' requests from one with ``dataclasses.replace``.
    """

    workflow: Workflow[..., Any] | str | None
    """The workflow, its name, ``module:function`` or ``file.py:function``; None to resume."""
    config: Mapping[str, Any] | None = None
    """The resolved config; None: the project's config with ``overrides``."""
    overrides: Sequence[str] = ()
    project_dir: str | Path | None = None
    executor: str = "local"
    """``local``, ``parallel`` or ``ray``; ``local`` lets the config's ``executor`` decide."""
    workers: int | None = None
    executor_options: Mapping[str, Any] | None = None
    """Options for the executor (``{"address": ...}`` for ray), over the config's."""
    use_cache: bool = True
    rerun: Collection[str] = ()
    """Steps (``fit``) or step calls (``3_fit``) to run again whatever the cache holds."""
    plugins: Sequence[object] = ()
    """Plugins for this run only (progress display, a sweep's pruner), beside the trackers."""
    tags: Mapping[str, str] | None = None
    command: str | None = None
    """What the run records as its command; None: this process's command line."""
    sweep_id: str | None = None
    resume_from: str | None = None
    """A failed, crashed or killed run to resume: its workflow and config are used again."""
    from_run: str | None = None
    from_steps: Sequence[str] = ()
    to_steps: Sequence[str] = ()


def launch(request: LaunchRequest) -> str:
    """Run ``request.workflow`` and return the run id; raise ``StepFailedError`` if a step
    failed.

    Everything that can be wrong with the config or the workflow is found before the run is
    recorded, so a bad invocation leaves no half-made run behind. With ``resume_from`` (a run
    id), the workflow and config of that run are used again and every step it finished with
    the same inputs is reused, even when caching is off. ``executor_options`` go to the
    executor (``{"address": ...}`` for ray), over those of the config's ``executor`` group.

    ``from_steps``/``to_steps`` run part of the workflow (``runtime.partial``); the outputs
    the chosen steps need from the steps left out, and the workflow parameters no config
    value gives, are taken from run ``from_run`` (by default, for steps, the latest run of
    the workflow that has them) and recorded as cached from it.
    """
    workflow, config, resume_from = request.workflow, request.config, request.resume_from
    from_run, from_steps, to_steps = request.from_run, request.from_steps, request.to_steps
    project_dir, rerun, workers = request.project_dir, request.rerun, request.workers
    from qflow.runtime import reads

    reads.install()  # before user modules import pyarrow: its readers get wrapped
    project = find_project(Path(project_dir) if project_dir else None)
    reuse: dict[str, StepRun] = {}
    if resume_from is not None:
        workflow, config, reuse, resume_from, partial = _resume_plan(project, resume_from)
        # A partial run resumes as the same part, fed by the same earlier run.
        from_run = partial.get("inputs_from", from_run)
        from_steps = partial.get("from_steps", from_steps)
        to_steps = partial.get("to_steps", to_steps)
    if workflow is None:
        raise QFlowError("launch() needs a workflow, or resume_from= a run to resume.")
    wf = workflow if isinstance(workflow, Workflow) else load_workflow(workflow, project)
    resolved = (
        dict(config)
        if config is not None
        else load_config(wf.name, request.overrides, project.conf_dir)
    )
    part = prepare(
        wf, resolved, project.root, from_run=from_run, from_steps=from_steps, to_steps=to_steps
    )
    _check_rerun(rerun, part.whole)
    traced = part.traced
    executor, options = _executor_options(request.executor, request.executor_options, resolved)
    runner = create_executor(executor, **{**options, **({"workers": workers} if workers else {})})
    if hasattr(runner, "bind_workflow"):
        from qflow.runtime.remote import WorkflowSpec

        spec = WorkflowSpec(_workflow_ref(wf), resolved, str(project.root), part.inputs)
        runner.bind_workflow(spec)
    from qflow.runtime.trackers import trackers_from_config

    hooks = create_plugin_manager([*request.plugins, *trackers_from_config(resolved, project.root)])
    from qflow.store import open_stores

    metadata, artifacts = open_stores(project.root)
    metadata.mark_crashed_runs()
    run_id = new_run_id()
    scheduler = Scheduler(
        traced,
        metadata,
        artifacts,
        runner,
        hooks,
        use_cache=request.use_cache,
        rerun=rerun,
        reuse=reuse,
        project_root=str(project.root),
        bound=part.bound,
    )
    status = RunStatus.KILLED
    error: str | None = "interrupted"
    announced = False
    farewell = (
        f"Run {run_id} stopped at once (second interrupt); it will show as crashed.\n"
        f"Hint: qflow resume {run_id} continues it, reusing the finished steps."
    )
    # From before the run is recorded until it is recorded as ended, an interrupt ends it
    # ``killed`` (a second one exits at once with the farewell): no window leaves it running.
    with interrupts_end_the_run(farewell):
        try:
            run = metadata.create_run(
                workflow=wf.name,
                config=resolved,
                run_id=run_id,
                command=request.command if request.command is not None else shlex.join(sys.argv),
                meta={
                    **environment_meta(project, executor, metadata, artifacts),
                    "workflow_ref": _workflow_ref(wf),
                    **_partial_meta(part.source, from_steps, to_steps, part.inputs),
                    "step_keys": {n.name: part.keys[n.name] for n in traced.graph.nodes},
                },
                sweep_id=request.sweep_id,
                resumed_from=resume_from,
            )
            if request.tags:
                metadata.set_tags(run_id, dict(request.tags))
            announced = True
            scheduler.notify(
                "before_run",
                run_id=run_id,
                workflow=wf.name,
                graph=traced.graph,
                config=resolved,
                meta=run.meta,
                artifacts=artifacts,
            )
            with Heartbeat(metadata, run_id):
                outcome = scheduler.run(run_id)
            status = outcome.status
            error = "; ".join(f"{k}: {v}" for k, v in outcome.failed.items()) or None
        except KeyboardInterrupt:
            metadata.close_step_runs(
                run_id, StepStatus.KILLED, "the run was interrupted (Ctrl-C or SIGTERM)"
            )
            raise RunKilledError(
                f"Run {run_id} of {wf.name!r} was interrupted; what it logged is kept.\n"
                f"Hint: qflow resume {run_id} continues it, reusing the finished steps."
            ) from None
        finally:
            metadata.finish_run(run_id, status, error=error)
            if announced:
                scheduler.notify("after_run", run_id=run_id, status=str(status), error=error)
    if outcome.failed:
        first = next(iter(outcome.failed))
        raise StepFailedError(
            first,
            run_id,
            f"Run {run_id} of {wf.name!r} failed: step {first} raised {outcome.failed[first]}\n"
            f"Hint: qflow logs {run_id} {first} shows its traceback and output.",
        )
    return run_id


def _partial_meta(
    inputs_from: str | None,
    from_steps: Sequence[str],
    to_steps: Sequence[str],
    inputs: Sequence[str],
) -> dict[str, Any]:
    """What a partial or cross-run invocation records in the run's ``meta``."""
    meta: dict[str, Any] = {}
    if inputs_from is not None:
        meta["inputs_from"] = inputs_from
    if from_steps:
        meta["from_steps"] = list(from_steps)
    if to_steps:
        meta["to_steps"] = list(to_steps)
    if inputs:
        meta["inputs"] = list(inputs)
    return meta


def _check_rerun(rerun: Collection[str], graph: Graph) -> None:
    """Every ``--rerun`` name must be a step of the workflow (``fit``) or a step call
    (``3_fit``); a typo would otherwise silently serve the cache."""
    known = {node.step for node in graph.nodes} | {node.name for node in graph.nodes}
    unknown = [name for name in rerun if name not in known]
    if unknown:
        steps = sorted({node.step for node in graph.nodes})
        raise QFlowError(
            f"--rerun {unknown[0]!r}: workflow {graph.workflow!r} has no such step; its steps "
            f"are {', '.join(steps)}.{did_you_mean(unknown[0], sorted(known))}"
        )


def _resume_plan(
    project: Project, run_id: str
) -> tuple[str, dict[str, Any], dict[str, StepRun], str, dict[str, Any]]:
    """What resuming ``run_id`` means: its workflow, config, the step runs to reuse and, for a
    partial run, what it ran and where its inputs came from (``_partial_meta``)."""
    from qflow.store import open_stores

    metadata, _ = open_stores(project.root)
    metadata.mark_crashed_runs()
    old = metadata.get_run(run_id)
    if old.status in (RunStatus.SUCCEEDED, RunStatus.RUNNING):
        raise QFlowError(
            f"Run {old.id} is {old.status}; only failed, crashed or killed runs can be resumed."
            + (
                "\nHint: qflow reproduce re-runs a finished run."
                if old.status != RunStatus.RUNNING
                else "\nHint: wait for it, or stop its process first."
            )
        )
    metadata.close_step_runs(old.id, StepStatus.KILLED, "the run was resumed by a new run")
    finished = {
        s.name: s
        for s in metadata.step_runs(old.id)
        if s.status in (StepStatus.SUCCEEDED, StepStatus.CACHED)
    }
    keys: tuple[str, ...] = ("inputs_from", "from_steps", "to_steps")
    partial: dict[str, Any] = {k: old.meta[k] for k in keys if k in old.meta}
    return old.meta.get("workflow_ref") or old.workflow, old.config, finished, old.id, partial


def _executor_options(
    name: str, options: Mapping[str, Any] | None, config: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The executor and its options (``address`` for ray). The config's ``executor`` group
    (``executor=ray`` on the command line) names it when ``name`` is the default ``local``;
    the group's options apply when it names the chosen executor, under ``options``."""
    group = config.get("executor")
    defaults: dict[str, Any] = {}
    if isinstance(group, Mapping) and group.get("name"):
        name = str(group["name"]) if name == "local" else name
        if group["name"] == name:
            defaults = {k: v for k, v in group.items() if k != "name"}
    return name, {k: v for k, v in {**defaults, **(options or {})}.items() if v is not None}


def _workflow_ref(wf: Workflow[..., Any]) -> str:
    """How to find the workflow again (for resume): ``module:name`` or ``file.py:name``."""
    module = getattr(wf.fn, "__module__", "")
    name = getattr(wf.fn, "__qualname__", wf.name)
    if "<locals>" in name:
        return wf.name
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        return f"{Path(main_file).resolve()}:{name}" if main_file else wf.name
    return f"{module}:{name}"


def environment_meta(
    project: Project, executor: str, metadata: MetadataStore, artifacts: ArtifactStore
) -> dict[str, Any]:
    """The run's ``meta``: code version, interpreter, machine, packages (by hash), saved in the
    run's own stores (local, or the tracking server's)."""
    from qflow import __version__
    from qflow.environment import capture, persist

    captured = capture(project.root, shlex.join(sys.argv), cache_dir=project.state_dir)
    meta = persist(
        captured,
        artifacts,
        metadata.save_environment,
        store_url=metadata.url,
        cache_dir=project.state_dir,
    )
    meta.update(qflow=__version__, executor=executor, project=str(project.root))
    return meta
