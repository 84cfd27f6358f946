"""The runs page, filters, sorts and histories on PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qflow.store import MetadataStore
from qflow.web.app import create_app
from qflow.web.settings import Settings

pytestmark = pytest.mark.postgres


def test_runs_page_and_history_on_postgres(postgres_url: str, tmp_path):
    store = MetadataStore(postgres_url)
    ids = []
    for i, (c, kind) in enumerate([(0.5, "lr"), (1.0, "svm"), ("big", "lr")]):
        run = store.create_run(workflow="wf", config={"model": {"kind": kind}})
        store.log_params(run.id, {"C": c})
        store.set_tags(run.id, {"team": "a" if i != 1 else "b"})
        store.log_metrics([(run.id, None, "acc", 0.5 + i / 10, s, 1.0 + s) for s in range(2000)])
        store.finish_run(run.id, "succeeded")
        ids.append(run.id)
    store.dispose()
    settings = Settings(
        store_url=postgres_url,
        artifacts_url=str(tmp_path / "a"),
        token="t" * 20,
        allowed_hosts=("testserver",),
    )
    with TestClient(
        create_app(settings), headers={"Authorization": "Bearer " + "t" * 20}
    ) as client:
        page = client.get(
            "/api/runs",
            params={
                "filter": "tags.team = 'a' and config.model.kind = lr and metrics.acc >= 0.5",
                "sort": "metrics.acc",
            },
        ).json()
        assert [r["id"] for r in page["runs"]] == [ids[2], ids[0]]
        by_param = client.get("/api/runs", params={"sort": "params.C"}).json()
        assert [r["id"] for r in by_param["runs"]] == [ids[1], ids[0], ids[2]]
        history = client.get(f"/api/runs/{ids[0]}/history", params={"key": "acc"}).json()
        assert history["total_points"] == 2000 and history["downsampled"]
        full = client.get(f"/api/runs/{ids[0]}/history", params={"key": "acc", "full": True})
        assert len(full.json()["timestamp"]) == 2000
        bad = client.get("/api/runs", params={"filter": "params.C ~ 'b' and"})
        assert bad.status_code == 400
