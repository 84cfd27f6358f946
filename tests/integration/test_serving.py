"""``qflow models serve`` in a real uvicorn subprocess on loopback, driven with httpx."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import qflow as qf
from tests.fixtures.models import features, load_data, train, trained

pytestmark = pytest.mark.integration
__all__ = ["trained"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(project: Path, ref: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "qflow", "models", "serve", ref, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "-C", str(project), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start in 60 s")


@pytest.fixture
def served(trained: tuple[Path, str]) -> Iterator[tuple[Path, str, str]]:
    """cancer@production (version 1) served with a 0.2 s alias check; yields project, url."""
    project, run_id = trained
    qf.models.register(run_id, "fit", name="cancer", project_dir=project)
    qf.models.set_alias("cancer", "production", 1, project_dir=project)
    process, url = _start(
        project, "cancer@production", "--check-every", "0.2", "--max-body", "65536"
    )
    try:
        yield project, run_id, url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _error(response: httpx.Response) -> dict[str, str]:
    return dict(response.json()["error"])


def test_predict_json_records_split_and_csv(served: tuple[Path, str, str]) -> None:
    project, _, url = served
    X = features(5)
    model = qf.models.load("cancer/1", project_dir=project)
    expected = model.predict(X).tolist()

    records = httpx.post(f"{url}/predict", json=X.to_dict("records"))
    assert records.status_code == 200, records.text
    assert records.json() == {"predictions": expected, "model": "cancer", "version": 1}

    split = httpx.post(
        f"{url}/predict",
        json={"dataframe_split": {"columns": list(X.columns), "data": X.to_numpy().tolist()}},
    )
    assert split.json()["predictions"] == expected

    csv = httpx.post(
        f"{url}/predict", content=X.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.status_code == 200, csv.text
    assert csv.json()["predictions"] == expected

    meta = httpx.get(f"{url}/metadata").json()
    assert meta["version"] == 1 and meta["pickled"] is True and meta["follows_alias"] is True
    assert meta["signature"]["columns"][0]["name"] == "mean radius"


def test_bad_input_gets_4xx_naming_the_field(served: tuple[Path, str, str]) -> None:
    _, _, url = served
    row = features(1).to_dict("records")[0]
    missing = {k: v for k, v in row.items() if k != "mean area"}
    response = httpx.post(f"{url}/predict", json=[missing])
    assert response.status_code == 422
    assert _error(response)["code"] == "missing_column"
    assert _error(response)["field"] == "mean area"

    response = httpx.post(f"{url}/predict", json=[{**row, "mean texture": "high"}])
    assert response.status_code == 422
    assert (_error(response)["code"], _error(response)["field"]) == ("wrong_type", "mean texture")

    response = httpx.post(f"{url}/predict", json=[{**row, "worst area": None}])
    assert (response.status_code, _error(response)["code"]) == (422, "null_value")

    response = httpx.post(f"{url}/predict", json=[[1.0, 2.0]])
    assert (response.status_code, _error(response)["code"]) == (422, "wrong_shape")
    assert _error(response)["field"] == "records[0]"

    response = httpx.post(f"{url}/predict", json={"columns": ["a"], "data": [[1, 2]]})
    assert (response.status_code, _error(response)["field"]) == (422, "data[0]")

    response = httpx.post(f"{url}/predict", json={"rows": []})
    assert (response.status_code, _error(response)["code"]) == (422, "wrong_shape")

    response = httpx.post(f"{url}/predict", json=[])
    assert (response.status_code, _error(response)["code"]) == (422, "empty")

    response = httpx.post(f"{url}/predict", content=b"")
    assert (response.status_code, _error(response)["code"]) == (400, "empty")

    response = httpx.post(f"{url}/predict", content=b"{not json")
    assert (response.status_code, _error(response)["code"]) == (400, "invalid_json")

    csv_missing = "mean radius\n1.0\n"
    response = httpx.post(
        f"{url}/predict", content=csv_missing, headers={"content-type": "text/csv"}
    )
    assert (response.status_code, _error(response)["code"]) == (422, "missing_column")

    big = json.dumps([row] * 200).encode()
    assert len(big) > 65536
    started = time.perf_counter()
    response = httpx.post(f"{url}/predict", content=big)
    assert (response.status_code, _error(response)["code"]) == (413, "too_large")
    assert time.perf_counter() - started < 5

    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_alias_move_is_picked_up_without_restart(served: tuple[Path, str, str]) -> None:
    project, _, url = served
    other = qf.run(train, {"rows": 200, "C": 0.01}, project_dir=project)
    qf.models.register(other, "fit", name="cancer", project_dir=project)
    rows = features(3).to_dict("records")
    assert httpx.post(f"{url}/predict", json=rows).json()["version"] == 1
    qf.models.set_alias("cancer", "production", 2, project_dir=project)
    deadline = time.monotonic() + 10
    version = 1
    while version != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        version = httpx.post(f"{url}/predict", json=rows).json()["version"]
    assert version == 2
    assert httpx.get(f"{url}/metadata").json()["version"] == 2


def test_pinned_server_keeps_its_version(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    for _ in range(2):
        qf.models.register(run_id, "fit", name="cancer", project_dir=project)
    qf.models.set_alias("cancer", "production", 1, project_dir=project)
    process, url = _start(project, "cancer@production", "--pin", "--check-every", "0.1")
    try:
        qf.models.set_alias("cancer", "production", 2, project_dir=project)
        time.sleep(0.5)
        response = httpx.post(f"{url}/predict", json=features(1).to_dict("records"))
        assert response.json()["version"] == 1
        assert httpx.get(f"{url}/metadata").json()["follows_alias"] is False
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_nan_infinity_and_row_lists_fail_the_signature_check_with_a_hint(
    served: tuple[Path, str, str],
) -> None:
    _, _, url = served
    row = features(1).to_dict("records")[0]
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps([row]).replace(str(row["mean radius"]), literal, 1)
        response = httpx.post(
            f"{url}/predict", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        error = _error(response)
        assert (error["code"], error["field"]) == ("not_finite", "mean radius")
        assert f"row 0 is {literal}" in error["message"] and "Hint:" in error["message"]

    response = httpx.post(f"{url}/predict", json={"inputs": [list(row.values())]})
    assert response.status_code == 422
    error = _error(response)
    assert (error["code"], error["field"]) == ("wrong_shape", "inputs[0]")
    assert "named columns" in error["message"]
    assert 'Hint: send records [{"mean radius": ...' in error["message"]


@qf.step
def fit_forest(X: pd.DataFrame, y: pd.Series) -> Pipeline:
    from sklearn.ensemble import RandomForestClassifier

    return make_pipeline(StandardScaler(), RandomForestClassifier(20, random_state=0)).fit(X, y)


@qf.workflow
def forest(cfg: Any) -> Any:
    X, y = load_data(cfg.rows)
    return fit_forest(X, y)


def test_health_reports_an_alias_target_that_cannot_load(
    served: tuple[Path, str, str],
) -> None:
    project, _, url = served
    other = qf.run(forest, {"rows": 200}, project_dir=project)  # a model too big to inline
    version = qf.models.register(other, "fit_forest", name="cancer", project_dir=project)
    blobs = [p for p in (project / ".qflow").rglob(version.artifact_key) if p.is_file()]
    assert len(blobs) == 1
    blobs[0].chmod(0o644)
    blobs[0].write_bytes(b"not the registered model")
    qf.models.set_alias("cancer", "production", 2, project_dir=project)
    deadline = time.monotonic() + 10
    health = httpx.get(f"{url}/health")
    while health.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        health = httpx.get(f"{url}/health")
    assert health.status_code == 503
    body = health.json()
    assert (body["status"], body["version"]) == ("degraded", 1)
    assert "points at version 2" in body["error"] and "still serving version 1" in body["error"]
    rows = features(2).to_dict("records")
    assert httpx.post(f"{url}/predict", json=rows).json()["version"] == 1


def test_serving_line_only_after_the_port_is_bound(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    qf.models.register(run_id, "fit", name="cancer", project_dir=project)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "qflow", "models", "serve", "cancer", "--port", str(port)]
        result = subprocess.run(
            [*command, "-C", str(project)], capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert "Serving" not in result.stderr + result.stdout
    assert f"Cannot serve on 127.0.0.1:{port}" in result.stderr
