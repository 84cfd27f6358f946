"""Where a run lives in its external trackers: MLflow experiment/run ids, W&B project/group.

Ids recorded on the run win: ``run.meta["trackers"][name]`` (a table such as
``{"experiment_id": "1", "run_id": "ab12…"}``) or tags ``mlflow.experiment_id``,
``mlflow.run_id``, ``wandb.project``, ``wandb.group``, ``wandb.run_id``. Otherwise, for each
tracker the run's config names: MLflow is asked for the parent run tagged ``qflow.run_id``
(when mlflow is installed; a tracker that does not answer is a note, not an error), and the
W&B project and group follow from the names the W&B tracker uses (``<workflow>-<run id>``).
QFlow's own store comes first: its experiment is the workflow, its run id the run's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qflow.store.metadata.records import Run


def _recorded(run: Run) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    meta = run.meta.get("trackers")
    if isinstance(meta, dict):
        for name, ids in meta.items():
            if isinstance(ids, dict):
                found[str(name)] = {str(k): str(v) for k, v in ids.items() if v is not None}
    for key, value in run.tags.items():
        name, _, field = key.partition(".")
        if name in ("mlflow", "wandb") and field:
            found.setdefault(name, {})[field] = value
    return found


def _mlflow_ids(run: Run, options: dict[str, Any], project_root: Path) -> dict[str, str]:
    if importlib.util.find_spec("mlflow") is None:
        return {"note": "mlflow is not installed here; ids not looked up"}
    from qflow.integrations.mlflow import MlflowTracker, masked

    tracker = MlflowTracker(project_root=project_root, **options)
    try:
        client = tracker.client
        experiment = client.get_experiment_by_name(tracker.experiment or run.workflow)
        if experiment is None:
            return {"note": f"no MLflow experiment {tracker.experiment or run.workflow!r}"}
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`qflow.run_id` = '{run.id}' and tags.`qflow.kind` = 'run'",
            max_results=1,
        )
        ids = {
            "experiment_id": str(experiment.experiment_id),
            "experiment": str(experiment.name),
            "tracking_uri": masked(tracker.tracking_uri),
        }
        if found:
            ids["run_id"] = str(found[0].info.run_id)
        else:
            ids["note"] = "no MLflow run carries this QFlow run id (hint: qflow sync RUN)"
        return ids
    except Exception as exc:  # a tracker that is down must not stop the report
        return {"note": f"MLflow did not answer: {type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        tracker.close()


def tracker_ids(run: Run, project_root: Path | None) -> list[dict[str, str]]:
    """One ``{"tracker": name, …ids}`` table per tracker the run reported to."""
    from qflow.errors import QFlowError
    from qflow.runtime.trackers import BUILTIN_TRACKER, tracker_specs

    recorded = _recorded(run)
    try:
        specs = tracker_specs(run.config.get("tracker"))
    except QFlowError:
        specs = []
    names = [str(s["name"]) for s in specs if s["name"] != BUILTIN_TRACKER]
    rows = [{"tracker": BUILTIN_TRACKER, "experiment": run.workflow, "run_id": run.id}]
    for name in dict.fromkeys([*names, *recorded]):
        if name == BUILTIN_TRACKER:
            continue
        ids = dict(recorded.get(name, {}))
        options = next((s for s in specs if s["name"] == name), {"name": name})
        options = {k: v for k, v in options.items() if k != "name"}
        if not ids and name == "mlflow" and project_root is not None:
            allowed = ("tracking_uri", "registry_uri", "experiment")
            ids = _mlflow_ids(run, {k: v for k, v in options.items() if k in allowed}, project_root)
        elif not ids and name == "wandb":
            ids = {"project": str(options.get("project") or run.workflow)}
            ids["group"] = f"{run.workflow}-{run.id}"
            if options.get("entity"):
                ids["entity"] = str(options["entity"])
        rows.append({"tracker": name, **ids})
    return rows
