"""``qflow import mlflow --from URI`` from a real MLflow store, twice (idempotent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.integrations.mlflow_import import DONE_TAG

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def _mlflow_history(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """An MLflow store with two runs of experiment churn; (URI, run name → MLflow id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment(
        "churn", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    ids = {}
    for name, status in (("baseline", "FINISHED"), ("broken", "FAILED")):
        run = client.create_run(experiment, run_name=name, tags={"team": "risk"})
        run_id = run.info.run_id
        client.log_param(run_id, "C", "0.5")
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(4)],
        )
        report = tmp_path / "report.txt"
        report.write_text(f"report of {name}")
        client.log_artifact(run_id, str(report), "reports/final")
        client.set_terminated(run_id, status)
        ids[name] = run_id
    return uri, ids


def _import(capsys: Any, uri: str, project: Path) -> dict[str, Any]:
    assert run_cli(["import", "mlflow", "--from", uri, "--json", "-C", str(project)]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_import_copies_runs_and_is_idempotent(project: Path, tmp_path: Path, capsys: Any) -> None:
    uri, ids = _mlflow_history(tmp_path)
    first = _import(capsys, uri, project)
    assert (first["experiments"], first["runs"], first["skipped"]) == (1, 2, 0)
    assert (first["params"], first["metrics"], first["artifacts"]) == (2, 8, 2)

    client = qf.Client(project)
    runs = {r.tags["mlflow.runName"]: r for r in client.runs("churn")}
    assert sorted(runs) == ["baseline", "broken"]
    baseline = runs["baseline"]
    assert (baseline.status, runs["broken"].status) == ("succeeded", "failed")
    assert baseline.params == {"C": "0.5"} and baseline.tags["team"] == "risk"
    assert [(m.step, m.value, m.timestamp) for m in baseline.metric_history("loss")] == [
        (s, 1.0 / (s + 1), 1_700_000_000 + s / 1000) for s in range(4)
    ]
    [artifact] = baseline.artifacts
    assert artifact.name == "reports/final/report.txt"
    path = client.artifacts.local_path(artifact.ref.key)
    assert path is not None and path.read_text() == "report of baseline"
    assert baseline.meta["mlflow"]["run_id"] == ids["baseline"]

    again = _import(capsys, uri, project)
    assert (again["runs"], again["skipped"]) == (0, 2)
    assert len(client.runs("churn")) == 2

    # an import interrupted inside a run leaves it without the completion tag
    client.metadata.set_tags(runs["broken"].id, {DONE_TAG: "partial"})
    third = _import(capsys, uri, project)
    assert (third["runs"], third["skipped"], third["replaced"]) == (1, 1, 1)
    names = sorted(r.tags["mlflow.runName"] for r in client.runs("churn"))
    assert names == ["baseline", "broken"]
