"""NaN and ±Infinity in a run's params and config: the dashboard API answers valid JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fastapi.testclient import TestClient

from tests.unit.web.conftest import TOKEN, WebProject, make_settings


def test_non_finite_params_and_config_are_valid_json(web_project: WebProject, tmp_path: Path):
    from qflow.store import SqlMetadataStore
    from qflow.web.app import create_app

    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    store = SqlMetadataStore(url)
    run = store.create_run(workflow="train", config={"threshold": math.inf})
    store.log_params(run.id, {"lr": math.nan, "floor": -math.inf})
    store.dispose()
    app = create_app(make_settings(web_project, store_url=url))  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for path in ("/api/runs", f"/api/runs/{run.id}", f"/api/compare?runs={run.id}"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            json.loads(response.text, parse_constant=_refuse)  # what a browser accepts
        [listed] = client.get("/api/runs").json()["runs"]
        assert listed["id"] == run.id and set(listed["params"]) == {"lr", "floor"}


def _refuse(name: str) -> object:
    raise AssertionError(f"{name} is not JSON")
