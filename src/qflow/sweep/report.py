"""What a sweep found: its trials, the best one, parameter importances and plots.

Plots (optimisation history, parallel coordinates) are drawn with Optuna's matplotlib
backend on the Agg canvas and saved as PNG under ``.qflow/sweeps/<id>/``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.sweep.repair import recorded_as

if TYPE_CHECKING:
    import optuna

    from qflow.config.project import Project

PLOTS = ("optimization_history", "parallel_coordinate")


def _project(project_dir: str | Path | None) -> Project:
    from qflow.config.project import existing_project

    return existing_project(Path(project_dir) if project_dir else None)


def _storage(project: Project) -> optuna.storages.BaseStorage:
    """The sweeps' storage, read-only in spirit: a project without a database yet reads an
    empty one in memory, so listing sweeps never creates ``.qflow``."""
    from qflow.store.location import EMPTY_STORE_URL, default_store_url
    from qflow.sweep.storage import open_storage

    url = default_store_url(project.root)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        url = EMPTY_STORE_URL
    return open_storage(url)


def list_sweeps(project_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every sweep of the project, newest first: id, workflow, objective, trials, best value."""
    import optuna

    storage = _storage(_project(project_dir))
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=True):
        settings = summary.user_attrs.get("qflow") or {}
        best = summary.best_trial
        rows.append(
            {
                "id": summary.study_name,
                "workflow": settings.get("workflow"),
                "objective": settings.get("objective"),
                "direction": summary.direction.name.lower(),
                "trials": summary.n_trials,
                "target": settings.get("trials"),
                "best_value": best.value if best is not None else None,
                "started": summary.datetime_start.isoformat() if summary.datetime_start else None,
            }
        )
    return sorted(rows, key=lambda row: row["id"], reverse=True)


def sweep_report(
    sweep_id: str, project_dir: str | Path | None = None, *, plots: bool = True
) -> dict[str, Any]:
    """A sweep's summary as plain data (``qflow sweeps show`` prints it)."""
    import optuna

    from qflow.sweep.storage import study_name

    project = _project(project_dir)
    storage = _storage(project)
    name = study_name(storage, sweep_id)
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    settings = study.user_attrs.get("qflow") or {}
    states: dict[str, int] = {}
    for trial in trials:
        states[recorded_as(trial)] = states.get(recorded_as(trial), 0) + 1
    report: dict[str, Any] = {
        "id": name,
        "workflow": settings.get("workflow"),
        "objective": settings.get("objective"),
        "direction": study.direction.name.lower(),
        "sampler": settings.get("sampler"),
        "target": settings.get("trials"),
        "params": settings.get("params", {}),
        "states": states,
        "best": _trial(study.best_trial) if complete else None,
        "importances": _importances(study, complete),
        "plots": {},
        "trials": [_trial(t) for t in trials],
    }
    if plots and complete:
        report["plots"] = save_plots(study, project.state_dir / "sweeps" / name)
    return report


def _trial(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "number": trial.number,
        "state": recorded_as(trial),
        "value": trial.value,
        "params": dict(trial.params),
        "run_id": trial.user_attrs.get("run_id"),
        "duration": duration,
        "last_step": trial.last_step,
    }


def _importances(
    study: optuna.Study, complete: list[optuna.trial.FrozenTrial]
) -> dict[str, float] | None:
    """fANOVA importances of the parameters; None with fewer than two finished trials or
    when no parameter varied."""
    import optuna

    if len(complete) < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None
    return {key: float(value) for key, value in found.items()}


def save_plots(study: optuna.Study, folder: Path) -> dict[str, str]:
    """Optimisation history and parallel coordinates as PNG files in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as plots

    folder.mkdir(parents=True, exist_ok=True)
    saved: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name in PLOTS:
            axes = getattr(plots, f"plot_{name}")(study)
            figure = axes.figure
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            saved[name] = str(path)
    return saved
