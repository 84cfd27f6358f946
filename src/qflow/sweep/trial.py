"""One trial = one ordinary QFlow run, in the sweep's process or in a process of its own.

``python -m qflow.sweep.trial SPEC.json`` is how the driver runs a trial in its own process
(``--parallel`` > 1): the run then owns that process's main thread (signal handlers,
timeouts work as in ``qflow run``) and a pruned trial can be stopped from any thread. The
child reports to Optuna's storage itself (intermediate values, pruning) and writes what
happened to a small JSON file; the driver reads the objective from the run and tells Optuna.
The child has a process group of its own, so the terminal's Ctrl-C reaches only the driver,
which stops its trials with SIGTERM (their runs end ``killed``) and settles them itself.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class TrialJob:
    """What a trial runs: everything needed to start it in another process."""

    project: str
    workflow: str
    overrides: list[str]
    sweep_id: str
    number: int
    trial_id: int
    objective: str
    pruner: str
    executor: str | None
    workers: int | None
    store_url: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRun:
    """How a trial's run ended: ``succeeded``, ``failed``, ``pruned`` or ``interrupted``."""

    status: str
    run_id: str | None = None
    error: str | None = None
    pruned_at: int | None = None


_INTERRUPTED = "the trial was interrupted (Ctrl-C or SIGTERM)"


def run_trial(
    job: TrialJob,
    trial: optuna.trial.Trial,
    *,
    own_process: bool,
    plugins: Iterable[object] = (),
) -> TrialRun:
    """Launch the trial's run with the pruning plugin; never raises for a failed run.

    An interruption that is not the pruner's (Ctrl-C, SIGTERM: ``KeyboardInterrupt`` or
    ``RunKilledError``) ends the trial as ``interrupted``, its run (if it started one) being
    recorded ``killed``; the caller settles the trial from the run and stops.
    """
    from qflow.errors import QFlowError, RunKilledError, StepFailedError
    from qflow.runtime.launch import LaunchRequest, launch
    from qflow.sweep.pruning import PruningReporter

    reporter = PruningReporter(trial, job.objective, own_process=own_process)
    try:
        try:
            request = LaunchRequest(
                job.workflow,
                overrides=job.overrides,
                project_dir=job.project,
                executor=job.executor or "local",
                workers=job.workers,
                plugins=[reporter, *plugins],
                tags={"sweep.id": job.sweep_id, "sweep.trial": str(job.number), **job.tags},
                sweep_id=job.sweep_id,
                command=(
                    f"qflow sweep {shlex.quote(job.workflow)} --resume {job.sweep_id}"
                    f"  # trial {job.number}"
                ),
            )
            run_id = launch(request)
        except (KeyboardInterrupt, QFlowError) as exc:
            if reporter.pruned:
                return TrialRun("pruned", reporter.run_id, pruned_at=reporter.pruned_at)
            if isinstance(exc, KeyboardInterrupt | RunKilledError):
                return TrialRun("interrupted", reporter.run_id, _INTERRUPTED)
            failed = exc.run_id if isinstance(exc, StepFailedError) else reporter.run_id
            return TrialRun("failed", failed, str(exc).splitlines()[0])
        if reporter.pruned:
            return TrialRun("pruned", run_id, pruned_at=reporter.pruned_at)
        return TrialRun("succeeded", run_id)
    except KeyboardInterrupt:
        if reporter.pruned:
            return TrialRun("pruned", reporter.run_id, pruned_at=reporter.pruned_at)
        return TrialRun("interrupted", reporter.run_id, _INTERRUPTED)
    finally:
        if reporter.run_id is not None:
            trial.set_user_attr("run_id", reporter.run_id)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a trial's own process: ``python -m qflow.sweep.trial SPEC.json``."""
    from qflow.runtime.heartbeat import interrupts_end_the_run
    from qflow.runtime.lifeline import end_with_parent

    end_with_parent(os.getppid(), orderly=True)  # a killed sweep leaves no trial behind
    args = list(sys.argv[1:] if argv is None else argv)
    spec_path = Path(args[0])
    spec: dict[str, Any] = json.loads(spec_path.read_text(encoding="utf-8"))
    result_path = Path(spec.pop("result"))
    job = TrialJob(**spec)
    try:  # the driver stops a trial with SIGTERM: from here on it is a KeyboardInterrupt
        with interrupts_end_the_run():
            outcome = _run_in_own_process(job)
    except KeyboardInterrupt:
        outcome = TrialRun("interrupted", None, _INTERRUPTED)
    _write(result_path, outcome)
    return 0


def _run_in_own_process(job: TrialJob) -> TrialRun:
    import optuna

    from qflow.sweep.pruning import create_pruner
    from qflow.sweep.storage import open_storage

    study = optuna.load_study(
        study_name=job.sweep_id,
        storage=open_storage(job.store_url),
        pruner=create_pruner(job.pruner),
    )
    trial = optuna.trial.Trial(study, job.trial_id)
    return run_trial(job, trial, own_process=True)


def _write(path: Path, outcome: TrialRun) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(outcome)), encoding="utf-8")
    temporary.replace(path)


def read_result(path: Path) -> TrialRun | None:
    """What a trial's process wrote, or None if it died first."""
    try:
        return TrialRun(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
