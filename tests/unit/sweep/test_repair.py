from __future__ import annotations

import time
from pathlib import Path

import pytest

from qflow.store import MetadataStore
from qflow.store.metadata.records import Run
from qflow.sweep.repair import (
    INTERRUPTED,
    RETRY_OF,
    Verdict,
    counted,
    judge,
    recorded_as,
    repair,
    retry_interrupted,
)
from qflow.sweep.storage import open_storage

optuna = pytest.importorskip("optuna")


def _run(status: str, *, metrics: dict[str, float] | None = None, pruned: bool = False) -> Run:
    return Run(
        id=f"run-{status}",
        workflow="train",
        status=status,
        created_at=0.0,
        ended_at=None,
        config={},
        parent_run_id=None,
        resumed_from=None,
        sweep_id="s",
        host=None,
        user=None,
        pid=None,
        command=None,
        heartbeat_at=None,
        error=None,
        meta={},
        tags={"sweep.pruned": "true"} if pruned else {},
        metrics_summary=metrics or {},
    )


SUCCEEDED = _run("succeeded", metrics={"score": 0.75})


@pytest.mark.parametrize(
    ("recorded", "run", "interrupted", "expected"),
    [
        ("fail", SUCCEEDED, False, Verdict("complete", 0.75, "run-succeeded")),
        ("running", SUCCEEDED, True, Verdict("complete", 0.75, "run-succeeded")),
        ("interrupted", SUCCEEDED, False, Verdict("complete", 0.75, "run-succeeded")),
        ("complete", _run("killed"), False, None),
        ("pruned", _run("failed"), False, None),
        ("fail", _run("killed"), False, Verdict("interrupted", run_id="run-killed")),
        ("running", _run("crashed"), False, Verdict("interrupted", run_id="run-crashed")),
        ("fail", _run("killed", pruned=True), False, Verdict("pruned", run_id="run-killed")),
        ("fail", _run("failed"), False, None),
        ("interrupted", _run("failed"), False, Verdict("fail", run_id="run-failed")),
        ("fail", _run("succeeded", metrics={"loss": 1.0}), False, None),
        ("running", None, False, None),
        ("running", None, True, Verdict("interrupted")),
        ("running", _run("running"), False, None),
        ("running", _run("running"), True, Verdict("interrupted", run_id="run-running")),
        ("interrupted", _run("killed"), False, None),
        ("fail", None, False, None),
    ],
    ids=[
        "failed-but-succeeded",
        "running-succeeded",
        "interrupted-but-succeeded",
        "complete-kept",
        "pruned-kept",
        "old-interrupted-record",
        "process-died",
        "pruned-run",
        "real-failure-kept",
        "interrupted-but-step-failed",
        "no-objective-kept",
        "no-run-yet",
        "no-run-stopped",
        "another-process",
        "stopped-while-running",
        "interrupted-kept",
        "fail-without-run-kept",
    ],
)
def test_judge(recorded: str, run: Run | None, interrupted: bool, expected: Verdict | None) -> None:
    assert judge(recorded, run, "score", interrupted=interrupted) == expected


def _finished_run(
    metadata: MetadataStore, number: int, status: str, score: float | None, **tags: str
) -> str:
    run = metadata.create_run(workflow="train", config={}, sweep_id="sweep1")
    metadata.set_tags(run.id, {"sweep.id": "sweep1", "sweep.trial": str(number), **tags})
    if score is not None:
        metadata.log_metrics([(run.id, None, "score", score, None, time.time())])
    if status != "running":
        metadata.finish_run(run.id, status)
    return run.id


def test_resume_repairs_records_from_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    metadata = MetadataStore(url)
    storage = open_storage(url)
    study = optuna.create_study(study_name="sweep1", storage=storage, direction="maximize")
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    trials = [study.ask(distributions) for _ in range(8)]
    runs = {
        0: _finished_run(metadata, 0, "succeeded", 0.8),  # told FAIL by an interrupted sweep
        1: _finished_run(metadata, 1, "killed", None),  # interrupted, recorded before the fix
        2: _finished_run(metadata, 2, "failed", None),  # a real failure
        3: _finished_run(metadata, 3, "succeeded", 0.6),  # the sweep died before telling
        5: _finished_run(metadata, 5, "succeeded", 0.9),  # already complete (value 0.1)
        6: _finished_run(metadata, 6, "succeeded", None),  # no objective
        7: _finished_run(metadata, 7, "killed", 0.2, **{"sweep.pruned": "true"}),
    }
    for number in (0, 1, 2, 6, 7):
        study.tell(trials[number], state=optuna.trial.TrialState.FAIL)
    study.tell(trials[5], 0.1)
    # trial 4: RUNNING, no run (just asked for, or its process died before starting one)

    fresh = repair(storage, "sweep1", "score", metadata, stale_after=3600)

    assert [(r.number, r.was, r.now, r.value) for r in fresh] == [
        (0, "fail", "complete", 0.8),
        (1, "fail", "interrupted", None),
        (3, "running", "complete", 0.6),
        (7, "fail", "pruned", None),
    ]
    reloaded = optuna.load_study(study_name="sweep1", storage=storage)
    by_number = {t.number: t for t in reloaded.get_trials(deepcopy=False)}
    assert [recorded_as(by_number[n]) for n in range(8)] == [
        "complete",
        "interrupted",
        "fail",
        "complete",
        "running",
        "complete",
        "fail",
        "pruned",
    ]
    assert by_number[0].value == pytest.approx(0.8)
    assert by_number[0].user_attrs["run_id"] == runs[0]
    assert INTERRUPTED not in by_number[0].user_attrs
    assert by_number[1].user_attrs[INTERRUPTED] is True
    assert by_number[5].value == pytest.approx(0.1)  # a result is never rewritten
    assert reloaded.best_trial.number == 0
    assert counted(reloaded) == 7  # all but the interrupted trial 1

    again = repair(storage, "sweep1", "score", metadata, stale_after=3600)
    assert again == []
    stale = repair(storage, "sweep1", "score", metadata, stale_after=0)
    assert [(r.number, r.was, r.now) for r in stale] == [(4, "running", "interrupted")]
    metadata.dispose()


def test_interrupted_parameters_are_queued_once(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'qflow.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    done, stopped = study.ask(distributions), study.ask(distributions)
    study.tell(done, 1.0)
    storage.set_trial_user_attr(stopped._trial_id, INTERRUPTED, True)
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    assert counted(study) == 1

    assert retry_interrupted(study) == [stopped.number]
    assert retry_interrupted(study) == []
    assert counted(study) == 1  # a queued trial counts once it runs
    retry = study.ask(distributions)
    assert retry.params == stopped.params
    assert retry.user_attrs[RETRY_OF] == stopped.number
    assert counted(study) == 2
