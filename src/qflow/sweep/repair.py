"""Settle a sweep's trials from their QFlow runs: the run is what happened, Optuna is told.

A trial is one QFlow run, and the run's record (status, tags, metrics) is written by the run
itself the moment it ends. Optuna's trial state is written afterwards by the sweep, and an
interruption (Ctrl-C, SIGTERM, a dead process) can fall between the two. So whenever the
sweep is unsure (on an interruption, and on ``--resume``) it settles trials from their runs:

============================  ==============================================================
the trial's run               the trial becomes
============================  ==============================================================
succeeded, objective logged   ``COMPLETE`` with the objective's value
tagged ``sweep.pruned``       ``PRUNED``
succeeded, no objective       ``FAIL`` (the sweep's objective is wrong: it counts)
failed                        ``FAIL`` (a step raised: it counts, as in ``study.optimize``)
killed, crashed, or none      *interrupted*: ``FAIL`` with the user attribute
                              ``qflow.interrupted``; it does not count toward ``--trials``,
                              and ``--resume`` tries its parameters again
still running                 left alone (another process owns it)
============================  ==============================================================

Optuna does not let a finished trial change, but a trial recorded ``FAIL`` whose run had
succeeded is a wrong record, not a result: ``rewrite`` corrects it in Optuna's own tables
(through Optuna's SQLAlchemy models, in one transaction).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import Run

INTERRUPTED = "qflow.interrupted"
"""User attribute of a ``FAIL`` trial that was interrupted rather than failed."""

RETRY_OF = "qflow.retry_of"
"""User attribute of a trial that tries an interrupted trial's parameters again."""

FINISHED_BAD = ("killed", "crashed")


@dataclass(frozen=True)
class Verdict:
    """What a trial should be: ``complete``, ``pruned``, ``fail`` or ``interrupted``."""

    state: str
    value: float | None = None
    run_id: str | None = None


def recorded_as(trial: optuna.trial.FrozenTrial) -> str:
    """The trial's state in QFlow's terms (``interrupted`` for an interrupted ``FAIL``)."""
    name = trial.state.name.lower()
    if name == "fail" and trial.user_attrs.get(INTERRUPTED):
        return "interrupted"
    return name


def judge(
    recorded: str,
    run: Run | None,
    objective: str,
    *,
    interrupted: bool = False,
) -> Verdict | None:
    """What a trial recorded as ``recorded`` should be, given its run; None: leave it.

    ``interrupted`` says the caller knows the trial's process was stopped (so a trial with no
    run, or a run still marked running, was interrupted rather than in progress elsewhere).
    ``complete`` and ``pruned`` trials are results and are never changed.
    """
    if recorded in ("complete", "pruned", "waiting"):
        return None
    verdict = _from_run(run, objective, interrupted=interrupted)
    if verdict is None or verdict.state == recorded:
        return None
    return verdict


def _from_run(run: Run | None, objective: str, *, interrupted: bool) -> Verdict | None:
    if run is None or run.status == "running":
        return Verdict("interrupted", run_id=run.id if run else None) if interrupted else None
    if run.tags.get("sweep.pruned") == "true":
        return Verdict("pruned", run_id=run.id)
    if run.status == "succeeded":
        value = run.metrics_summary.get(objective)
        if value is None:
            return Verdict("fail", run_id=run.id)
        return Verdict("complete", float(value), run.id)
    if run.status in FINISHED_BAD:
        return Verdict("interrupted", run_id=run.id)
    return Verdict("fail", run_id=run.id)


def trial_run(metadata: MetadataStore, sweep_id: str, number: int) -> Run | None:
    """The newest run of trial ``number`` of sweep ``sweep_id``, if it started one."""
    runs = metadata.list_runs(tags={"sweep.id": sweep_id, "sweep.trial": str(number)}, limit=1)
    return runs[0] if runs else None


def tell(study: optuna.Study, trial_id: int, number: int, verdict: Verdict) -> None:
    """Finish a ``RUNNING`` trial as ``verdict`` says, through Optuna's API."""
    from optuna.trial import TrialState

    storage = study._storage
    if verdict.run_id is not None:
        storage.set_trial_user_attr(trial_id, "run_id", verdict.run_id)
    if verdict.state == "complete":
        study.tell(number, verdict.value)
    elif verdict.state == "pruned":
        study.tell(number, state=TrialState.PRUNED)
    else:
        if verdict.state == "interrupted":
            storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
        study.tell(number, state=TrialState.FAIL)


def rewrite(storage: optuna.storages.RDBStorage, trial_id: int, verdict: Verdict) -> None:
    """Correct a finished trial's record in place: state, value, ``run_id`` and
    ``qflow.interrupted``; Optuna's API refuses to change a finished trial."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    state = TrialState.FAIL if verdict.state == "interrupted" else TrialState[verdict.state.upper()]
    session = storage.scoped_session()
    try:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        trial.state = state
        trial.datetime_complete = trial.datetime_complete or dt.datetime.now()
        for old in models.TrialValueModel.where_trial_id(trial_id, session):
            session.delete(old)
        if verdict.value is not None:
            stored, kind = models.TrialValueModel.value_to_stored_repr(verdict.value)
            session.add(
                models.TrialValueModel(
                    trial_id=trial_id, objective=0, value=stored, value_type=kind
                )
            )
        attrs: dict[str, Any] = {INTERRUPTED: True if verdict.state == "interrupted" else None}
        if verdict.run_id is not None:
            attrs["run_id"] = verdict.run_id
        _set_attrs(session, models, trial, attrs)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _set_attrs(session: Any, models: Any, trial: Any, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        row = models.TrialUserAttributeModel.find_by_trial_and_key(trial, key, session)
        if value is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(
                models.TrialUserAttributeModel(
                    trial_id=trial.trial_id, key=key, value_json=json.dumps(value)
                )
            )
        else:
            row.value_json = json.dumps(value)


@dataclass(frozen=True)
class Repair:
    """One trial ``--resume`` corrected: its number, what it was and what it is now."""

    number: int
    was: str
    now: str
    value: float | None
    run_id: str | None


def repair(
    storage: optuna.storages.RDBStorage,
    sweep_id: str,
    objective: str,
    metadata: MetadataStore,
    *,
    stale_after: float,
) -> list[Repair]:
    """Settle every trial of ``sweep_id`` whose record disagrees with its run (see the module
    docstring); a ``RUNNING`` trial with no run is interrupted once ``stale_after`` seconds
    old. Runs whose process died are marked crashed first."""
    import optuna

    metadata.mark_crashed_runs()
    study = optuna.load_study(study_name=sweep_id, storage=storage)
    now = dt.datetime.now()
    repairs = []
    for trial in study.get_trials(deepcopy=False):
        recorded = recorded_as(trial)
        if recorded in ("complete", "pruned", "waiting"):
            continue
        run = trial_run(metadata, sweep_id, trial.number)
        started = trial.datetime_start or now
        abandoned = recorded == "running" and (now - started).total_seconds() > stale_after
        verdict = judge(recorded, run, objective, interrupted=abandoned)
        if verdict is None:
            continue
        if recorded == "running":
            tell(study, trial._trial_id, trial.number, verdict)
        else:
            rewrite(storage, trial._trial_id, verdict)
        repairs.append(Repair(trial.number, recorded, verdict.state, verdict.value, verdict.run_id))
    return repairs


def retry_interrupted(study: optuna.Study) -> list[int]:
    """Queue the parameters of each interrupted trial once more (a grid point is not lost);
    the numbers of the trials queued again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    queued = []
    for trial in trials:
        if recorded_as(trial) == "interrupted" and trial.number not in retried and trial.params:
            study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number})
            queued.append(trial.number)
    return queued


def counted(study: optuna.Study) -> int:
    """Trials that count toward the sweep's ``--trials``: every trial asked for except the
    interrupted ones and the queued ones not started yet."""
    return sum(
        1
        for trial in study.get_trials(deepcopy=False)
        if recorded_as(trial) not in ("interrupted", "waiting")
    )
