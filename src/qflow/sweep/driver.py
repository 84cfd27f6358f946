"""The sweep driver: ask Optuna for a trial, run it as a QFlow run, tell Optuna the result.

A sweep is an Optuna study named by the sweep id, stored beside the project's metadata store
(``qflow.sweep.storage``). Its settings (workflow, overrides, search space, objective, sampler,
number of trials) are saved with the study, so ``qflow sweep WORKFLOW --resume ID`` continues
it, from any machine that reaches the store, and several processes can work on one sweep at
once: ``trials`` is the study's total, shared by every process working on it.

Each trial is one normal run of the workflow with the trial's values as config overrides, on
whatever executor is configured, tagged ``sweep.id`` and ``sweep.trial`` and recorded with
the sweep id. With ``parallel`` = 1 trials run one after the other in this process; with more,
each trial runs in a process of its own, taken from a pool of persistent trial processes
(``qflow.sweep.pool``) started with the sweep, so no trial pays for an interpreter's start and
imports. A worker whose trial ended is given its next trial before the ended one is told to
Optuna (as in Optuna's own parallel runs, a trial's sampling may not see the results of the
trials still being told). Steps that do not depend on the swept keys come from QFlow's cache:
to make sure they run only once, a new sweep's first trial runs alone before the others start.

Ctrl-C (or SIGTERM) stops the sweep: trials in progress are stopped (their runs end
``killed``), every trial is settled from its run (``qflow.sweep.repair``): finished trials
stay finished, interrupted ones are marked so and do not count toward ``trials``, and
``SweepInterruptedError`` names the exact ``qflow sweep WORKFLOW --resume ID`` command,
which is also given to ``on_start`` when the sweep starts.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from qflow.errors import ConfigError, QFlowError, RunKilledError, did_you_mean
from qflow.sweep.pool import PoolWorker, TrialPool, WarmUp, wait_any
from qflow.sweep.repair import (
    Repair,
    Verdict,
    counted,
    judge,
    recorded_as,
    repair,
    retry_interrupted,
    tell,
    trial_run,
)
from qflow.sweep.signals import interrupts_deferred
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

__all__ = [
    "SAMPLERS",
    "SweepInterruptedError",
    "SweepOutcome",
    "SweepSpec",
    "SweepStart",
    "TrialResult",
    "resume_command",
    "resume_sweep",
    "start_sweep",
]

STALE_AFTER = 3600.0
"""A RUNNING trial without a run after this many seconds was abandoned (resume settles it
as interrupted)."""

STOP_TIMEOUT = 30.0
"""Seconds a stopped trial's process has to record its run ``killed`` before it is killed."""


class SweepInterruptedError(RunKilledError):
    """The sweep was stopped (Ctrl-C, SIGTERM); its finished trials are kept."""

    def __init__(self, message: str, sweep_id: str, command: str) -> None:
        super().__init__(message)
        self.sweep_id = sweep_id
        self.command = command


@dataclass(frozen=True)
class TrialResult:
    """One finished trial: ``complete``, ``pruned``, ``fail`` or ``interrupted``."""

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


@dataclass(frozen=True)
class SweepStart:
    """What ``on_start`` is told before the first trial: the sweep id, how far it is, the
    command that continues it, and the trials ``--resume`` corrected or queued again."""

    sweep_id: str
    workflow: str
    target: int
    done: int
    parallel: int
    command: str
    repaired: list[Repair] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)


OnTrial = Callable[[TrialResult], None]
OnStart = Callable[[SweepStart], None]


def resume_command(
    workflow: str,
    sweep_id: str,
    *,
    parallel: int = 1,
    executor: str | None = None,
    workers: int | None = None,
    project_dir: str | Path | None = None,
) -> str:
    """The ``qflow sweep WORKFLOW --resume ID …`` command that continues a sweep as it ran."""
    parts = ["qflow", "sweep", workflow, "--resume", sweep_id]
    if parallel > 1:
        parts += ["--parallel", str(parallel)]
    if executor is not None:
        parts += ["--executor", executor]
    if workers is not None:
        parts += ["--workers", str(workers)]
    if project_dir is not None:
        parts += ["--project", str(project_dir)]
    return shlex.join(parts)


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
    on_start: OnStart | None = None,
) -> SweepOutcome:
    """Create a sweep of ``workflow`` (a name, ``module:function`` or ``file.py:function``)
    and run ``trials`` trials, ``parallel`` at a time.

    The search space is the config's ``sweep:`` section (``qflow.sweep.space``); ``params``
    (config key → expression), ``objective`` and ``direction`` override it. Raises
    ``SweepInterruptedError`` on Ctrl-C or SIGTERM, after settling every trial.
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
    parallel = positive("parallel", parallel)
    study = open_study(project, sweep_id, spec, create=True)
    command = resume_command(spec.workflow, sweep_id, parallel=parallel, project_dir=project_dir)
    start = SweepStart(sweep_id, spec.workflow, 0, 0, parallel, command)
    return _drive(project, study, spec, start, plugins, on_trial, on_start)


def resume_sweep(
    sweep_id: str,
    *,
    workflow: str | None = None,
    trials: int | None = None,
    parallel: int = 1,
    executor: str | None = None,
    workers: int | None = None,
    project_dir: str | Path | None = None,
    plugins: Iterable[object] = (),
    on_trial: OnTrial | None = None,
    on_start: OnStart | None = None,
) -> SweepOutcome:
    """Continue sweep ``sweep_id`` (or a unique prefix) until ``trials`` trials count (default:
    the number it was started with); ``workflow``, when given, must be the sweep's.

    First every trial whose record disagrees with its run is settled from the run
    (``qflow.sweep.repair``): a trial recorded failed whose run succeeded becomes complete,
    trials abandoned by a dead process become interrupted. Interrupted trials do not count,
    and their parameters are tried again first.
    """
    from qflow.client.client import Client
    from qflow.config.project import find_project
    from qflow.store.location import default_store_url
    from qflow.sweep.storage import open_storage, study_name

    project = find_project(Path(project_dir) if project_dir else None)
    storage = open_storage(default_store_url(project.root))
    full_id = study_name(storage, sweep_id)
    spec = load_spec(project, full_id)
    if workflow is not None:
        _check_workflow(project, workflow, spec.workflow, full_id)
    if trials is not None:
        spec = replace(spec, trials=positive("trials", trials))
    if executor is not None:
        spec = replace(spec, executor=executor, workers=workers)
    parallel = positive("parallel", parallel)
    with interrupts_deferred(reraise=True):
        repaired = repair(
            storage,
            full_id,
            spec.objective,
            Client(project.root).metadata,
            stale_after=STALE_AFTER,
        )
    study = open_study(project, full_id, spec, create=False)
    if trials is not None:
        study.set_user_attr("qflow", asdict(spec))
    retried = retry_interrupted(study)
    command = resume_command(
        spec.workflow,
        full_id,
        parallel=parallel,
        executor=executor,
        workers=workers,
        project_dir=project_dir,
    )
    start = SweepStart(full_id, spec.workflow, 0, 0, parallel, command, repaired, retried)
    return _drive(project, study, spec, start, plugins, on_trial, on_start)


def _check_workflow(project: Project, given: str, saved: str, sweep_id: str) -> None:
    from qflow.runtime.discovery import load_workflow

    if given == saved:
        return
    with contextlib.suppress(QFlowError):
        if load_workflow(given, project).name == load_workflow(saved, project).name:
            return
    raise ConfigError(
        f"Sweep {sweep_id} sweeps the workflow {saved!r}, not {given!r}.\n"
        f"Hint: qflow sweep {shlex.quote(saved)} --resume {sweep_id}"
    )


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
    start: SweepStart
    inflight: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    """Trials asked for and neither settled nor handed to a pool worker's child yet:
    number → (trial id, params). A trial is here from the moment Optuna records it, so an
    interrupt at any point settles it."""

    @property
    def overrides(self) -> list[str]:
        """The overrides of every trial, before the trial's own values."""
        return [*self.spec.overrides, *(["~sweep"] if self.spec.drop_sweep_section else [])]

    def job(self, trial: optuna.trial.Trial) -> TrialJob:
        values = [override(key, trial.params[key]) for key in self.space.params]
        return TrialJob(
            project=str(self.project.root),
            workflow=self.spec.workflow,
            overrides=[*self.overrides, *values],
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
    worker: PoolWorker
    result: Path
    done: bool = False
    """The trial ended (its worker replied, or died); it is told to Optuna when collected."""

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.worker.process


def _drive(
    project: Project,
    study: optuna.Study,
    spec: SweepSpec,
    start: SweepStart,
    plugins: Iterable[object],
    on_trial: OnTrial | None,
    on_start: OnStart | None,
) -> SweepOutcome:
    from qflow.client.client import Client
    from qflow.runtime.heartbeat import interrupts_end_the_run
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
        start,
    )
    target = _target(ctx)
    ctx.start = replace(start, target=target, done=counted(study))
    if on_start is not None:
        on_start(ctx.start)
    outcome = SweepOutcome(study.study_name)
    parallel = start.parallel
    children: dict[int, _Child] = {}
    warm_up = parallel > 1 and not _states(study, "COMPLETE")
    name, root = study.study_name, str(project.root)
    prepare = WarmUp(root, spec.workflow, ctx.overrides, ctx.store_url, name, spec.pruner)
    pool = TrialPool(project.root, ctx.folder / "workers.log", prepare)
    if parallel > 1:
        ctx.folder.mkdir(parents=True, exist_ok=True)
        pool.prestart(parallel)

    def fill(slots: int) -> None:
        """Start trials until ``slots`` run (inline: run them) or the sweep has its count."""
        while sum(not c.done for c in children.values()) < slots and counted(study) < target:
            # Ctrl-C waits until the trial Optuna records is known as inflight or as a child
            # (started in a worker): whatever comes next, it is stopped and settled.
            with interrupts_deferred(reraise=True):
                trial = study.ask(ctx.space.distributions())
                ctx.inflight[trial.number] = (trial._trial_id, dict(trial.params))
                if parallel > 1:
                    children[trial.number] = _spawn(ctx, trial, pool)
                    del ctx.inflight[trial.number]
            inline = parallel == 1
            if inline and _record(ctx, outcome, _inline(ctx, trial)).state == "interrupted":
                raise KeyboardInterrupt

    try:
        with interrupts_end_the_run():
            while True:
                fill(1 if warm_up else parallel)
                if not children:
                    break
                finished = _wait_any(children)
                for child in finished:
                    pool.release(child.worker)
                if not warm_up:  # the freed workers take their next trials before these are told
                    fill(parallel)
                for child in finished:
                    with interrupts_deferred(reraise=True):  # taken off means told
                        del children[child.job.number]
                        result = _record(ctx, outcome, _collect(ctx, child))
                    warm_up = warm_up and result.state != "complete"
    except KeyboardInterrupt:
        _interrupted(ctx, outcome, children)
    except BaseException:
        _abandon(ctx, children.values())
        raise
    finally:
        pool.close()
    outcome.best = _best(study)
    return outcome


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
    params = dict(trial.params)
    run = run_trial(job, trial, own_process=False, plugins=ctx.plugins)
    with interrupts_deferred(reraise=True):
        result = _conclude(ctx, job, params, run)
        del ctx.inflight[trial.number]
    return result


def _spawn(ctx: _Context, trial: optuna.trial.Trial, pool: TrialPool) -> _Child:
    """Start the trial in a pool worker (output in ``trial-N.log``, outcome in its result)."""
    job = ctx.job(trial)
    ctx.folder.mkdir(parents=True, exist_ok=True)
    spec_file = ctx.folder / f"trial-{job.number}.json"
    result = ctx.folder / f"trial-{job.number}.result.json"
    result.unlink(missing_ok=True)
    (ctx.folder / f"trial-{job.number}.log").write_bytes(b"")
    spec_file.write_text(json.dumps({**asdict(job), "result": str(result)}), encoding="utf-8")
    worker = pool.acquire()
    try:
        worker.start(spec_file)
    except OSError:  # it died while idle: a fresh one takes the trial
        pool.release(worker)
        worker = pool.acquire()
        worker.start(spec_file)
    return _Child(job, dict(trial.params), worker, result)


def _wait_any(children: dict[int, _Child]) -> list[_Child]:
    """The children whose trial ended (or whose worker died), once at least one did; they
    stay in ``children``, marked ``done``, until their trial is told."""
    while True:
        running = {id(c.worker): c for c in children.values() if not c.done}
        for worker in wait_any([c.worker for c in running.values()], timeout=1.0):
            running[id(worker)].done = True
        finished = [running[key] for key in running if running[key].done]
        if finished:
            return finished


def _collect(ctx: _Context, child: _Child) -> TrialResult:
    """Tell the trial a finished child ran (interrupts held by the caller)."""
    run = read_result(child.result)
    if run is None:
        settled = _settle(ctx, child.job.number, child.job.trial_id, child.params)
        if settled.state == "complete":  # the process died after its run succeeded
            return settled
        log = ctx.folder / f"trial-{child.job.number}.log"
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        if not lines:  # it died before the trial's output went to the trial's log
            log = ctx.folder / "workers.log"
            lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        raise QFlowError(
            f"Trial {child.job.number} of sweep {ctx.study.study_name}: its process exited with "
            f"code {child.process.returncode} ({lines[-1] if lines else 'no output'}).\n"
            f"Hint: {log} has its output; {ctx.start.command} continues the sweep."
        )
    return _conclude(ctx, child.job, child.params, run)


def _conclude(ctx: _Context, job: TrialJob, params: dict[str, Any], run: TrialRun) -> TrialResult:
    """Tell Optuna how the trial ended; a run without the objective metric stops the sweep."""
    study, objective = ctx.study, ctx.spec.objective
    if run.status == "interrupted":
        return _settle(ctx, job.number, job.trial_id, params)
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


def _settle(ctx: _Context, number: int, trial_id: int, params: dict[str, Any]) -> TrialResult:
    """Finish a trial whose process was stopped from what its run recorded: complete if the
    run succeeded, otherwise interrupted (or pruned, or failed, as the run says)."""
    frozen = ctx.study._storage.get_trial(trial_id)
    recorded = recorded_as(frozen)
    if recorded != "running":  # already told
        value = frozen.value if recorded == "complete" else None
        return TrialResult(number, recorded, value, params, frozen.user_attrs.get("run_id"))
    ctx.client.metadata.mark_crashed_runs()
    run = trial_run(ctx.client.metadata, ctx.study.study_name, number)
    verdict = judge("running", run, ctx.spec.objective, interrupted=True) or Verdict(
        "interrupted", run_id=run.id if run else None
    )
    tell(ctx.study, trial_id, number, verdict)
    error = "interrupted (Ctrl-C or SIGTERM)" if verdict.state == "interrupted" else None
    return TrialResult(number, verdict.state, verdict.value, params, verdict.run_id, error)


def _state(name: str) -> optuna.trial.TrialState:
    from optuna.trial import TrialState

    return TrialState[name]


def _record(ctx: _Context, outcome: SweepOutcome, result: TrialResult) -> TrialResult:
    outcome.results.append(result)
    if ctx.on_trial is not None:
        ctx.on_trial(result)
    return result


def _stop(children: Iterable[_Child]) -> None:
    """SIGTERM the trial processes (their runs end ``killed``) and wait for them; a second
    Ctrl-C, or ``STOP_TIMEOUT``, kills them."""
    # A done child's worker is idle, or runs a later trial that is stopped as its own child.
    alive = [c.process for c in children if not c.done and c.process.poll() is None]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    try:
        for process in alive:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        for process in alive:
            process.kill()
        for process in alive:
            process.wait()


def _interrupted(ctx: _Context, outcome: SweepOutcome, children: dict[int, _Child]) -> NoReturn:
    """Stop the trials in progress, settle each from its run, and raise the error that
    names the command continuing the sweep."""
    _stop(children.values())
    stopped: list[TrialResult] = []
    with interrupts_deferred(reraise=False):
        for child in children.values():
            run = read_result(child.result)
            if run is not None and run.status != "interrupted":
                try:
                    result = _conclude(ctx, child.job, child.params, run)
                except ConfigError as exc:
                    result = TrialResult(
                        child.job.number, "fail", None, child.params, run.run_id, str(exc)
                    )
            else:
                result = _settle(ctx, child.job.number, child.job.trial_id, child.params)
            stopped.append(_record(ctx, outcome, result))
        for number, (trial_id, params) in list(ctx.inflight.items()):
            stopped.append(_record(ctx, outcome, _settle(ctx, number, trial_id, params)))
            del ctx.inflight[number]
    raise SweepInterruptedError(
        _interrupt_message(ctx, outcome.results), ctx.study.study_name, ctx.start.command
    ) from None


def _interrupt_message(ctx: _Context, results: Sequence[TrialResult]) -> str:
    trials = ctx.study.get_trials(deepcopy=False)
    finished = sum(1 for t in trials if recorded_as(t) in ("complete", "pruned", "fail"))
    interrupted = sorted(r.number for r in results if r.state == "interrupted")
    which = (
        f"trial{'s' if len(interrupted) > 1 else ''} {', '.join(map(str, interrupted))} "
        "stopped (not counted; --resume tries their parameters again); "
        if interrupted
        else ""
    )
    return (
        f"Sweep {ctx.study.study_name} of {ctx.spec.workflow!r} was interrupted: {which}"
        f"{finished} of {ctx.start.target} trials finished and are kept.\n"
        f"Hint: continue it with\n  {ctx.start.command}"
    )


def _abandon(ctx: _Context, children: Iterable[_Child]) -> None:
    """On an error: stop the trial processes and settle their trials from their runs."""
    children = list(children)
    _stop(children)
    with interrupts_deferred(reraise=False):
        stopped = [(c.job.number, c.job.trial_id, c.params) for c in children]
        stopped += [(number, *inline) for number, inline in ctx.inflight.items()]
        for number, trial_id, params in stopped:
            with contextlib.suppress(RuntimeError, ValueError):  # already finished
                _settle(ctx, number, trial_id, params)


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
