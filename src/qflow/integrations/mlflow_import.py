"""``qflow import mlflow --from URI``: copy an MLflow store's history into QFlow's stores.

Each MLflow experiment becomes a QFlow workflow name; each run (active ones, or deleted too)
becomes a QFlow run of it with MLflow's params (as MLflow stored them: strings), tags (the run
name as ``mlflow.runName``), every metric's whole history (step and timestamp kept) and its
artifact files (as logged artifacts under their MLflow paths). The run ends with MLflow's
status (FINISHED → succeeded, FAILED → failed, KILLED → killed; a RUNNING run → killed), and
MLflow's start and end times and run id are kept in the run's ``meta["mlflow"]`` (QFlow's own
``created_at`` is the import time).

Idempotent: an imported run is tagged ``qflow.mlflow_run_id`` and, once whole,
``qflow.mlflow_import = complete``; importing again skips the runs already whole and replaces
a run an interrupted import left half-copied.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.integrations.mlflow import masked, require

if TYPE_CHECKING:
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.contract import MetadataStore

RUN_TAG = "qflow.mlflow_run_id"
DONE_TAG = "qflow.mlflow_import"
_STATUS = {"FINISHED": "succeeded", "FAILED": "failed", "KILLED": "killed"}
_BATCH = 5000

Progress = Callable[[int, int, str], None]
"""Called with (runs done, runs in total, what is being copied)."""


@dataclass
class ImportReport:
    """What ``import_mlflow`` copied."""

    source: str
    experiments: int = 0
    runs: int = 0
    skipped: int = 0
    replaced: int = 0
    params: int = 0
    metrics: int = 0
    artifacts: int = 0
    run_ids: dict[str, str] = field(default_factory=dict)
    """MLflow run id → QFlow run id, for every run imported now or before."""


def _mlflow_runs(client: Any, experiment_id: str, view: Any) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], run_view_type=view, max_results=1000, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _files(client: Any, run_id: str, path: str | None = None) -> Iterator[str]:
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            yield from _files(client, run_id, item.path)
        else:
            yield item.path


def import_mlflow(
    uri: str,
    metadata: MetadataStore,
    artifacts: ArtifactStore,
    *,
    experiments: list[str] | None = None,
    include_deleted: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the MLflow store at ``uri`` (or only ``experiments`` by name) into QFlow."""
    require("mlflow", "mlflow")
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri, uri)
    report = ImportReport(masked(uri))
    previous = _previous(metadata)
    view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
    chosen = [
        e
        for e in client.search_experiments(view_type=view)
        if experiments is None or e.name in experiments
    ]
    todo = [(e, r) for e in chosen for r in _mlflow_runs(client, e.experiment_id, view)]
    report.experiments = len({e.experiment_id for e, _ in todo})  # those with runs
    with tempfile.TemporaryDirectory(prefix="qflow-import-") as tmp:
        for done, (experiment, run) in enumerate(todo):
            if progress is not None:
                progress(done, len(todo), f"{experiment.name}/{run.info.run_name}")
            old = previous.get(run.info.run_id)
            if old is not None and old[1]:
                report.skipped += 1
                report.run_ids[run.info.run_id] = old[0]
                continue
            if old is not None:  # half-copied by an interrupted import: copy it again
                _drop(metadata, old[0])
                report.replaced += 1
            new = _copy_run(client, metadata, artifacts, experiment.name, run, Path(tmp), report)
            report.run_ids[run.info.run_id] = new
            report.runs += 1
    if progress is not None:
        progress(len(todo), len(todo), "done")
    return report


def _previous(metadata: MetadataStore) -> dict[str, tuple[str, bool]]:
    """MLflow run id → (QFlow run id, whole) for runs imported before."""
    found: dict[str, tuple[str, bool]] = {}
    for run in metadata.list_runs(limit=10_000_000, include_archived=True):
        source = run.tags.get(RUN_TAG)
        if source:
            found[source] = (run.id, run.tags.get(DONE_TAG) == "complete")
    return found


def _drop(metadata: MetadataStore, run_id: str) -> None:
    run = metadata.get_run(run_id)
    if run.status == "running":
        metadata.finish_run(run_id, "killed", error="interrupted import, copied again")
    metadata.set_run_lifecycle([run_id], "deleted")
    metadata.set_tags(run_id, {RUN_TAG: "", DONE_TAG: "replaced"})


def _copy_run(
    client: Any,
    metadata: MetadataStore,
    artifacts: ArtifactStore,
    experiment: str,
    run: Any,
    tmp: Path,
    report: ImportReport,
) -> str:
    info = run.info
    record = metadata.create_run(
        workflow=experiment,
        config={},
        command=f"qflow import mlflow --from {report.source}",
        meta={
            "source": "mlflow-import",
            "mlflow": {
                "uri": report.source,
                "run_id": info.run_id,
                "experiment_id": info.experiment_id,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "user_id": info.user_id,
            },
        },
    )
    metadata.set_tags(record.id, {RUN_TAG: info.run_id})
    if run.data.params:
        metadata.log_params(record.id, dict(run.data.params))
        report.params += len(run.data.params)
    tags = {**run.data.tags, "mlflow.runName": info.run_name or ""}
    metadata.set_tags(record.id, tags)
    for key in run.data.metrics:
        history = client.get_metric_history(info.run_id, key)
        rows = [(record.id, None, m.key, m.value, m.step, m.timestamp / 1000) for m in history]
        for start in range(0, len(rows), _BATCH):
            metadata.log_metrics(rows[start : start + _BATCH])
        report.metrics += len(rows)
    for path in _files(client, info.run_id):
        local = client.download_artifacts(info.run_id, path, str(tmp))
        ref = artifacts.put_path(local)
        metadata.log_run_artifact(record.id, path, ref)
        Path(local).unlink(missing_ok=True)
        report.artifacts += 1
    metadata.finish_run(record.id, _STATUS.get(info.status, "killed"))
    if info.lifecycle_stage == "deleted":
        metadata.set_run_lifecycle([record.id], "deleted")
    metadata.set_tags(record.id, {DONE_TAG: "complete"})
    return record.id
