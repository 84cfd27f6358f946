"""The report names a run's MLflow experiment and run ids, looked up in a real MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


def qflow(project: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "qflow", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_report_names_the_mlflow_experiment_and_run(ci_project: Path) -> None:
    qflow(ci_project, "run", "train", "tracker=[filetracker,mlflow]")
    run_id = json.loads(qflow(ci_project, "runs", "--json", "--limit", "1"))[0]["id"]
    qflow(ci_project, "report", run_id, "-o", "r")
    text = (ci_project / "r" / "report.md").read_text()

    store = ci_project / ".qflow" / "tracker" / "mlflow" / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("train")
    assert experiment is not None
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`qflow.run_id` = '{run_id}' and tags.`qflow.kind` = 'run'",
    )
    assert f"| QFlow (filetracker) | train | {run_id} | – |" in text
    assert (
        f"| mlflow | {experiment.experiment_id} (train) | {parent.info.run_id} "
        f"| tracking_uri sqlite:///{store} |"
    ) in text
