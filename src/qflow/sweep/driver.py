"""The sweep driver: ask Optuna for a trial, run it as a QFlow run, tell Optuna the result.

A sweep is an Optuna study named by the sweep id, stored beside the project's metadata store
(``qflow.sweep.storage``). Its settings (workflow, overrides, search space, objective, sampler,
number of trials) are saved with the study, so ``qflow sweep --resume ID`` continues it, from
any machine that reaches the store, and several processes can work on one sweep at once:
``trials`` is the study's total, shared by every process working on it.

Each trial is one normal run of the workflow with the trial's values as config overrides, on
whatever executor is configured, tagged ``sweep.id`` and ``sweep.trial`` and recorded with
the sweep id. With ``parallel`` = 1 trials run one after the other in this process; with more,
each trial runs in a process of its own (``python -m qflow.sweep.trial``). Steps that do not
depend on the swept keys come from QFlow's cache: to make sure they run only once, a new
sweep's first trial runs alone before the others start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError, QFlowError, did_you_mean
from qflow.sweep.space import SearchSpace, override
from qflow.sweep.study import (
    SAMPLERS,
    SweepSpec,
    check_choice,
    load_spec,
    open_study,
    plan,
    positive,
)
from qflow.sweep.trial import TrialJob, TrialRun, read_result, run_trial

if TYPE_CHECKING:
    import optuna

    from qflow.client.client import Client
    from qflow.config.project import Project

__all__ = ["SAMPLERS", "SweepOutcome", "SweepSpec", "TrialResult", "resume_sweep", "start_sweep"]

STALE_AFTER = 3600.0
"""A RUNNING trial without a run after this many seconds was abandoned (resume fails it)."""


@dataclass(frozen=True)
class TrialResult:
    """One finished trial: ``complete``, ``pruned`` or ``fail``."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_id: str | None
    error: str | None = None


@dataclass
class SweepOutcome:
    """The trials this process ran, and the study's best trial so far."""

    sweep_id: str
    results: list[TrialResult] = field(default_factory=list)
    best: TrialResult | None = None


OnTrial = Callable[[TrialResult], None]


def start_sweep(
    workflow: str,
    *,
    overrides: Sequence[str] = (),
    params: Mapping[str, str] | None = None,
    objective: str | None = None,
    direction: str | None = None,
    trials: int = 20,
    parallel: int = 1,
    sampler: str = "tpe",
    pruner: str = "median",
    seed: int | None = None,
    executor: str | None = None,
    workers: int | None = None,
    project_dir: str | Path | None = None,
    plugins: Iterable[object] = (),
    on_trial: OnTrial | None = None,
) -> SweepOutcome:
    """Create a sweep of ``workflow`` (a name, ``module:function`` or ``file.py:function``)
    and run ``trials`` trials, ``parallel`` at a time.

    The search space is the config's ``sweep:`` section (``qflow.sweep.space``); ``params``
    (config key → expression), ``objective`` and ``direction`` override it.
    """
    from qflow.config.project import find_project
    from qflow.ids import new_run_id

    project = find_project(Path(project_dir) if project_dir else None)
    spec = plan(
        workflow,
        project,
        overrides=overrides,
        params=params or {},
        objective=objective,
        direction=direction,
    )
    spec = replace(
        spec,
        trials=positive("trials", trials),
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        executor=executor,
        workers=workers,
    )
    check_choice("sampler", sampler, SAMPLERS)
    sweep_id = new_run_id()
    study = open_study(project, sweep_id, spec, create=True)
    return _drive(project, study, spec, positive("parallel", parallel), plugins, on_trial)


def resume_sweep(
    sweep_id: str,
    *,
    trials: int | None = None,
    parallel: int = 1,
    executor: str | None = None,
    workers: int | None = None,
    project_dir: str | Path | None = None,
    plugins: Iterable[object] = (),
    on_trial: OnTrial | None = None,
) -> SweepOutcome:
    """Continue sweep ``sweep_id`` (or a unique prefix) until it has ``trials`` trials (default:
    the number it was started with). Trials abandoned by a dead process are failed first."""
    from qflow.config.project import find_project
    from qflow.store.location import default_store_url
    from qflow.sweep.storage import open_storage, study_name

    project = find_project(Path(project_dir) if project_dir else None)
    full_id = study_name(open_storage(default_store_url(project.root)), sweep_id)
    spec = load_spec(project, full_id)
    if trials is not None:
        spec = replace(spec, trials=positive("trials", trials))
    if executor is not None:
        spec = replace(spec, executor=executor, workers=workers)
    study = open_study(project, full_id, spec, create=False)
    if trials is not None:
        study.set_user_attr("qflow", asdict(spec))
    _recover(project, study, spec)
    return _drive(project, study, spec, positive("parallel", parallel), plugins, on_trial)


# -- the loop -----------------------------------------------------------------------------


@dataclass
class _Context:
    project: Project
    study: optuna.Study
    spec: SweepSpec
    space: SearchSpace
    client: Client
    store_url: str
    folder: Path
    plugins: list[object]
    on_trial: OnTrial | None

    def job(self, trial: optuna.trial.Trial) -> TrialJob:
        values = [override(key, trial.params[key]) for key in self.space.params]
        base = [*self.spec.overrides, *(["~sweep"] if self.spec.drop_sweep_section else [])]
        return TrialJob(
            project=str(self.project.root),
            workflow=self.spec.workflow,
            overrides=[*base, *values],
            sweep_id=self.study.study_name,
            number=trial.number,
            trial_id=trial._trial_id,
            objective=self.spec.objective,
            pruner=self.spec.pruner,
            executor=self.spec.executor,
            workers=self.spec.workers,
            store_url=self.store_url,
        )


@dataclass
class _Child:
    job: TrialJob
    params: dict[str, Any]
    process: subprocess.Popen[bytes]
    result: Path


def _drive(
    project: Project,
    study: optuna.Study,
    spec: SweepSpec,
    parallel: int,
    plugins: Iterable[object],
    on_trial: OnTrial | None,
) -> SweepOutcome:
    from qflow.client.client import Client
    from qflow.store.location import default_store_url

    ctx = _Context(
        project,
        study,
        spec,
        spec.space(),
        Client(project.root),
        default_store_url(project.root),
        project.state_dir / "sweeps" / study.study_name,
        list(plugins),
        on_trial,
    )
    outcome = SweepOutcome(study.study_name)
    target = _target(ctx)
    children: dict[int, _Child] = {}
    warm_up = parallel > 1 and not _states(study, "COMPLETE")
    try:
        while True:
            slots = 1 if warm_up else parallel
            while len(children) < slots and len(_states(study, *_COUNTED)) < target:
                trial = study.ask(ctx.space.distributions())
                if parallel == 1:
                    _record(ctx, outcome, _inline(ctx, trial))
                else:
                    children[trial.number] = _spawn(ctx, trial)
            if not children:
                break
            child = _wait_any(children)
            result = _record(ctx, outcome, _collect(ctx, child))
            warm_up = warm_up and result.state != "complete"
    except BaseException:
        _abandon(ctx, children.values())
        raise
    outcome.best = _best(study)
    return outcome


_COUNTED = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def _states(study: optuna.Study, *names: str) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=tuple(TrialState[n] for n in names))


def _target(ctx: _Context) -> int:
    if ctx.spec.sampler != "grid":
        return ctx.spec.trials
    size = 1
    for values in ctx.space.grid().values():
        size *= len(values)
    return min(ctx.spec.trials, size)


def _inline(ctx: _Context, trial: optuna.trial.Trial) -> TrialResult:
    job = ctx.job(trial)
    try:
        run = run_trial(job, trial, own_process=False, plugins=ctx.plugins)
    except BaseException:
        ctx.study.tell(trial, state=_state("FAIL"))
        raise
    return _conclude(ctx, job, dict(trial.params), run)


def _spawn(ctx: _Context, trial: optuna.trial.Trial) -> _Child:
    job = ctx.job(trial)
    ctx.folder.mkdir(parents=True, exist_ok=True)
    spec_file = ctx.folder / f"trial-{job.number}.json"
    result = ctx.folder / f"trial-{job.number}.result.json"
    result.unlink(missing_ok=True)
    spec_file.write_text(json.dumps({**asdict(job), "result": str(result)}), encoding="utf-8")
    with (ctx.folder / f"trial-{job.number}.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "qflow.sweep.trial", str(spec_file)],
            cwd=ctx.project.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return _Child(job, dict(trial.params), process, result)


def _wait_any(children: dict[int, _Child]) -> _Child:
    while True:
        for number, child in children.items():
            if child.process.poll() is not None:
                return children.pop(number)
        time.sleep(0.05)


def _collect(ctx: _Context, child: _Child) -> TrialResult:
    run = read_result(child.result)
    if run is None:
        ctx.study.tell(child.job.number, state=_state("FAIL"))
        log = ctx.folder / f"trial-{child.job.number}.log"
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        raise QFlowError(
            f"Trial {child.job.number} of sweep {ctx.study.study_name}: its process exited with "
            f"code {child.process.returncode} ({lines[-1] if lines else 'no output'}).\n"
            f"Hint: {log} has its output; qflow sweep --resume {ctx.study.study_name} "
            "continues the sweep."
        )
    return _conclude(ctx, child.job, child.params, run)


def _conclude(ctx: _Context, job: TrialJob, params: dict[str, Any], run: TrialRun) -> TrialResult:
    """Tell Optuna how the trial ended; a run without the objective metric stops the sweep."""
    study, objective = ctx.study, ctx.spec.objective
    if run.status == "pruned":
        if run.run_id is not None:
            ctx.client.metadata.set_tags(run.run_id, {"sweep.pruned": "true"})
        study.tell(job.number, state=_state("PRUNED"))
        return TrialResult(job.number, "pruned", None, params, run.run_id, run.error)
    if run.status != "succeeded" or run.run_id is None:
        study.tell(job.number, state=_state("FAIL"))
        return TrialResult(job.number, "fail", None, params, run.run_id, run.error)
    metrics = ctx.client.run(run.run_id).metrics_summary
    if objective not in metrics:
        study.tell(job.number, state=_state("FAIL"))
        raise ConfigError(
            f"Run {run.run_id} of sweep {study.study_name} logged no metric {objective!r}, the "
            f"sweep's objective; it logged: {', '.join(sorted(metrics)) or '(none)'}."
            f"{did_you_mean(objective, metrics)}\nHint: log it with "
            f"qf.log_metric({objective!r}, value), or pick another --objective."
        )
    value = metrics[objective]
    study.tell(job.number, value)
    return TrialResult(job.number, "complete", value, params, run.run_id)


def _state(name: str) -> optuna.trial.TrialState:
    from optuna.trial import TrialState

    return TrialState[name]


def _record(ctx: _Context, outcome: SweepOutcome, result: TrialResult) -> TrialResult:
    outcome.results.append(result)
    if ctx.on_trial is not None:
        ctx.on_trial(result)
    return result


def _abandon(ctx: _Context, children: Iterable[_Child]) -> None:
    """Stop trial processes (SIGTERM ends their runs as killed) and fail their trials."""
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()
    for child in children:
        try:
            child.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.process.kill()
        with contextlib.suppress(RuntimeError, ValueError):  # already finished
            ctx.study.tell(child.job.number, state=_state("FAIL"))


def _recover(project: Project, study: optuna.Study, spec: SweepSpec) -> None:
    """Settle RUNNING trials whose process is gone: from their run if it finished, else FAIL."""
    from qflow.client.client import Client

    client = Client(project.root)
    now = dt.datetime.now()
    for trial in _states(study, "RUNNING"):
        runs = client.metadata.list_runs(
            tags={"sweep.id": study.study_name, "sweep.trial": str(trial.number)}, limit=1
        )
        if not runs:
            started = trial.datetime_start or now
            if (now - started).total_seconds() > STALE_AFTER:
                study.tell(trial.number, state=_state("FAIL"))
            continue
        run = runs[0]
        if run.status == "running":
            continue
        value = run.metrics_summary.get(spec.objective)
        if run.status == "succeeded" and value is not None:
            study.tell(trial.number, value)
        elif run.tags.get("sweep.pruned") == "true":
            study.tell(trial.number, state=_state("PRUNED"))
        else:
            study.tell(trial.number, state=_state("FAIL"))


def _best(study: optuna.Study) -> TrialResult | None:
    complete = _states(study, "COMPLETE")
    if not complete:
        return None
    best = study.best_trial
    return TrialResult(
        best.number,
        "complete",
        best.value,
        dict(best.params),
        best.user_attrs.get("run_id"),
    )
