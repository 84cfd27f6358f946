from __future__ import annotations

import threading

import pytest

from qflow.errors import ConfigError
from qflow.sweep.pruning import PruningReporter, TrialPruned, create_pruner

optuna = pytest.importorskip("optuna")


def _study_with_history() -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=create_pruner("median"))
    for value in (0.8, 0.9, 0.85, 0.95, 0.9):
        trial = study.ask()
        trial.report(value, 0)
        study.tell(trial, value)
    return study


def test_reports_step_indexed_objective_values_once() -> None:
    study = _study_with_history()
    trial = study.ask()
    reporter = PruningReporter(trial, "accuracy", own_process=False)
    reporter.before_run(run_id="r1")
    rows = [
        ("loss", 0.1, 0, 1.0),
        ("accuracy", 0.99, None, 1.0),
        ("accuracy", 0.97, 0, 1.0),
        ("accuracy", 0.5, 0, 2.0),  # same step again: ignored, as Optuna would warn
        ("accuracy", float("nan"), 1, 2.0),
    ]
    reporter.on_metrics(run_id="r1", step="1_fit", rows=rows)
    frozen = study.trials[trial.number]
    assert frozen.intermediate_values == {0: 0.97}
    assert not reporter.pruned
    assert reporter.run_id == "r1"


def test_prune_in_main_thread_raises() -> None:
    study = _study_with_history()
    trial = study.ask()
    reporter = PruningReporter(trial, "accuracy", own_process=False)
    with pytest.raises(TrialPruned, match="pruned at step 0"):
        reporter.on_metrics(run_id="r", step="s", rows=[("accuracy", 0.1, 0, 0.0)])
    assert reporter.pruned_at == 0
    assert isinstance(TrialPruned(), KeyboardInterrupt)
    reporter.on_metrics(run_id="r", step="s", rows=[("accuracy", 0.1, 1, 0.0)])  # no-op now


def test_prune_in_another_thread_only_records_when_sharing_the_process() -> None:
    study = _study_with_history()
    reporter = PruningReporter(study.ask(), "accuracy", own_process=False)
    errors: list[BaseException] = []

    def report() -> None:
        try:
            reporter.on_metrics(run_id="r", step="s", rows=[("accuracy", 0.2, 0, 0.0)])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=report)
    thread.start()
    thread.join()
    assert errors == []
    assert reporter.pruned


def test_pruners_by_name() -> None:
    assert isinstance(create_pruner("none"), optuna.pruners.NopPruner)
    assert isinstance(create_pruner("hyperband"), optuna.pruners.HyperbandPruner)
    with pytest.raises(ConfigError, match=r"(?s)Unknown pruner .medain.*Did you mean: median"):
        create_pruner("medain")
