"""The MLflow Model Registry from the command line: ``qflow models …``, ``qflow predict`` and
``qflow models serve`` on a project whose MLflow tracker config sets ``registry_uri``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import qflow as qf
from qflow.cli.app import run_cli
from tests.fixtures import tracker_workflows as tw

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

STORE = ".qflow/tracker/mlflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _configured(project: Path) -> None:
    """What ``qflow new`` writes for the mlflow tracker with a registry."""
    (project / "conf" / "tracker").mkdir(parents=True)
    (project / "conf" / "tracker" / "mlflow.yaml").write_text(
        f"name: mlflow\ntracking_uri: {STORE}\nregistry_uri: {STORE}\n"
    )


def _json(capsys: Any, args: list[str]) -> Any:
    assert run_cli([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_models_commands_use_the_configured_mlflow_registry(
    project: Path, capsys: Any, tmp_path: Path
) -> None:
    _configured(project)
    run = qf.run(tw.train, {"rows": 150, "C": 0.5, "tracker": "mlflow"}, project_dir=project)
    capsys.readouterr()
    where = ["-C", str(project)]
    first = _json(capsys, ["models", "register", run.id, "fit", "--name", "iris", *where])
    assert (first["name"], first["version"], first["run_id"]) == ("iris", 1, run.id)

    uri = f"sqlite:///{project / STORE / 'mlflow.db'}"
    client = MlflowClient(uri, uri)  # without a registry URI MLflow uses ./mlflow.db
    experiment = client.get_experiment_by_name("train")
    fit = client.search_runs([experiment.experiment_id], "attributes.run_name = '1_fit'")[0]
    version = client.get_model_version("iris", "1")
    assert version.run_id == fit.info.run_id
    assert version.source == f"runs:/{fit.info.run_id}/model"
    assert client.get_experiment_by_name("qflow-models") is None  # no duplicate model logged

    assert run_cli(["models", "register", run.id, "fit", "--name", "iris", *where]) == 0
    assert run_cli(["models", "alias", "iris", "production", "1", *where]) == 0
    assert run_cli(["models", "alias", "iris", "production", "2", *where]) == 0
    capsys.readouterr()
    history = _json(capsys, ["models", "history", "iris", *where])
    assert [(c["alias"], c["previous_version"], c["version"]) for c in history] == [
        ("production", None, 1),
        ("production", 1, 2),
    ]
    assert int(client.get_model_version_by_alias("iris", "production").version) == 2
    listed = _json(capsys, ["models", "list", *where])
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [
        ("iris", 2, {"production": 2})
    ]
    assert _json(capsys, ["models", "list", "--registry", "qflow", *where]) == []

    registry = qf.models.mlflow(f"sqlite:///{project / STORE / 'mlflow.db'}", project_dir=project)
    assert [c.version for c in registry.alias_history("iris", "production")] == [1, 2]

    X = run.step("load_data").load("X")
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    X.to_csv(source, index=False)
    assert run_cli(["predict", "iris@production", str(source), "-o", str(target), *where]) == 0
    expected = run.step("fit").load().predict(X)
    assert (pd.read_csv(target)["prediction"].to_numpy() == expected).all()


def test_serve_and_register_with_registry_flag(project: Path, capsys: Any) -> None:
    """No registry_uri configured: ``--registry mlflow`` picks MLflow at the tracker's store."""
    run = qf.run(tw.train, {"rows": 150, "C": 0.5, "tracker": "mlflow"}, project_dir=project)
    where = ["--registry", "mlflow", "-C", str(project)]
    assert run_cli(["models", "register", run.id, "fit", "--name", "iris", *where]) == 0
    assert run_cli(["models", "alias", "iris", "live", "1", *where]) == 0
    assert run_cli(["models", "list", "--json", "-C", str(project)]) == 0
    assert "iris" not in capsys.readouterr().out.split("\n")[-2]  # default: QFlow's own

    port = _free_port()
    command = [sys.executable, "-m", "qflow", "models", "serve", "iris@live", "--port", str(port)]
    process = subprocess.Popen(
        [*command, *where], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        X = run.step("load_data").load("X").head(4)
        response = httpx.post(f"{url}/predict", json=X.to_dict("records"))
        assert response.status_code == 200, response.text
        expected = run.step("fit").load().predict(X).tolist()
        assert response.json() == {"predictions": expected, "model": "iris", "version": 1}
    finally:
        process.terminate()
        process.wait(timeout=20)
