"""The REST API against a real project store (TestClient over create_app)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.web.conftest import WebProject


def test_runs_page_has_param_and_metric_columns(client: TestClient, web_project: WebProject):
    page = client.get("/api/runs", params={"workflow": "train"}).json()
    assert [r["id"] for r in page["runs"]] == web_project.runs[::-1]
    assert page["param_keys"] == ["C"]
    assert page["metric_keys"] == ["accuracy", "loss"]
    assert page["runs"][0]["params"] == {"C": 0.1}
    assert page["runs"][0]["metrics"]["loss"] == pytest.approx(1 / 300)
    assert page["has_more"] is False


def test_runs_filter_sort_and_pagination(client: TestClient, web_project: WebProject):
    found = client.get("/api/runs", params={"filter": "params.C = 0.1 and tags.team = 'a'"})
    assert [r["id"] for r in found.json()["runs"]] == [web_project.runs[1]]
    ascending = client.get(
        "/api/runs", params={"sort": "params.C", "order": "asc", "workflow": "train"}
    ).json()
    assert [r["params"]["C"] for r in ascending["runs"]] == [0.1, 1.0]
    first = client.get("/api/runs", params={"limit": 1, "sort": "id", "order": "asc"}).json()
    assert first["has_more"] is True and first["next_offset"] == 1
    second = client.get("/api/runs", params={"limit": 1, "offset": 1, "sort": "id", "order": "asc"})
    assert [r["id"] for r in first["runs"] + second.json()["runs"]] == web_project.runs
    none = client.get("/api/runs", params={"filter": "metrics.accuracy > 2"}).json()
    assert none["runs"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"filter": "metrics.accuracy >"},
        {"filter": "nonsense = 1"},
        {"filter": "metrics.accuracy = 'high'"},
        {"sort": "bogus"},
        {"sort": "metrics."},
        {"limit": 0},
        {"limit": 100000},
        {"offset": -1},
        {"order": "sideways"},
    ],
    ids=lambda p: repr(p),
)
def test_bad_runs_queries_are_4xx_json(client: TestClient, params: dict[str, object]):
    response = client.get("/api/runs", params=params)
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["message"]


def test_run_detail_steps_artifacts_and_logs(client: TestClient, web_project: WebProject):
    run_id = web_project.runs[0]
    run = client.get(f"/api/runs/{run_id[:10]}").json()
    assert run["id"] == run_id and run["status"] == "succeeded"
    assert [s["name"] for s in run["steps"]] == ["0_make", "1_features", "2_labels", "3_fit"]
    assert all(s["start"] >= 0 and s["duration"] >= 0 for s in run["steps"])
    assert run["config"] == {"n": 20, "C": 1.0}
    names = {a["name"] for a in run["artifacts"]}
    assert {"0_make.return", "3_fit.return", "notes.txt", "sample.csv"} <= names
    logs = client.get(f"/api/runs/{run_id}/logs", params={"step": "fit"}).json()
    assert "fitted with C 1.0" in logs[0]["stdout"]


def test_unknown_ids_are_404_json(client: TestClient, web_project: WebProject):
    for path in (
        "/api/runs/zzzz",
        "/api/runs/zzzz/graph",
        f"/api/runs/{web_project.runs[0]}/logs?step=nope",
        "/api/models/nope",
        "/api/models/clf/versions/9",
        f"/api/lineage/{web_project.runs[0]}?target=nope",
        "/api/launch/nope",
        "/api/launch/workflows/nope/config",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_metric_history_downsampled_full_and_incremental(
    client: TestClient, web_project: WebProject
):
    run_id = web_project.runs[0]
    url = f"/api/runs/{run_id}/history"
    full = client.get(url, params={"key": "loss", "full": True}).json()
    assert full["total_points"] == 300 and len(full["y"]) == 300 and not full["downsampled"]
    small = client.get(url, params={"key": "loss", "points": 40}).json()
    assert small["downsampled"] and len(small["y"]) <= 40
    assert max(small["y"]) == max(full["y"])  # the spike at step 137 survives
    assert 137 in small["x"]
    newer = client.get(url, params={"key": "loss", "after": full["last_id"]}).json()
    assert newer["x"] == [] and newer["last_id"] == full["last_id"]


def test_previews_are_safe_and_typed(client: TestClient, web_project: WebProject):
    run_id = web_project.runs[0]
    artifacts = {a["name"]: a for a in client.get(f"/api/runs/{run_id}").json()["artifacts"]}

    def preview(name: str) -> dict[str, object]:
        key = artifacts[name]["key"]
        return client.get(f"/api/runs/{run_id}/artifacts/{key}/preview").json()

    table = preview("0_make.return")
    assert table["kind"] == "table" and table["columns"] == ["x", "y"] and table["total_rows"] == 20
    assert preview("2_labels.return")["kind"] == "json"
    assert preview("notes.txt") | {} and preview("notes.txt")["text"] == "hello from fit"
    csv = preview("sample.csv")
    assert csv["kind"] == "table" and csv["rows"] == [[1, "x"], [2, "y"]]
    pickled = preview("3_fit.return")
    assert pickled["kind"] == "none" and "pickle" in str(pickled["reason"])
    raw = client.get(f"/api/runs/{run_id}/artifacts/{artifacts['notes.txt']['key']}/raw")
    assert raw.content == b"hello from fit"
    assert raw.headers["content-type"] == "application/octet-stream"
    assert "attachment" in raw.headers["content-disposition"]


def test_artifact_of_another_run_is_not_served(client: TestClient, web_project: WebProject):
    first, second = web_project.runs
    logged = client.get(f"/api/runs/{first}").json()["artifacts"]
    key = next(a["key"] for a in logged if a["name"] == "3_fit.return")
    assert client.get(f"/api/runs/{second}/artifacts/{key}/raw").status_code == 404


def test_graph_is_traced_and_coloured(client: TestClient, web_project: WebProject):
    run_id = web_project.runs[0]
    graph = client.get(f"/api/runs/{run_id}/graph").json()
    assert graph["source"] == "traced"
    assert {n["status"] for n in graph["nodes"]} == {"succeeded"}
    assert ("1_features", "3_fit") in {(e["source"], e["target"]) for e in graph["edges"]}
    assert "style n_3_fit fill:#b7e4c7" in graph["mermaid"]
    svg = client.get(f"/api/runs/{run_id}/graph.svg")
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content


def test_graph_from_lineage_without_project(web_project: WebProject):
    from qflow.web.app import create_app
    from tests.unit.web.conftest import TOKEN, make_settings

    app = create_app(make_settings(web_project, project_dir=None))  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        graph = client.get(f"/api/runs/{web_project.runs[0]}/graph").json()
        launch = client.get("/api/launch/workflows")
    assert graph["source"] == "lineage"
    assert ("0_make", "2_labels") in {(e["source"], e["target"]) for e in graph["edges"]}
    assert launch.status_code == 404


def test_compare_marks_differing_params(client: TestClient, web_project: WebProject):
    data = client.get("/api/compare", params={"runs": web_project.runs}).json()
    assert [r["id"] for r in data["runs"]] == web_project.runs
    assert data["differing_params"] == ["C"]
    assert data["metric_keys"] == ["accuracy", "loss"]
    assert data["config_keys"] == ["C", "n"] and data["differing_config"] == ["C"]
    assert [r["config"]["C"] for r in data["runs"]] == [1.0, 0.1]


def test_models_and_lineage(client: TestClient, web_project: WebProject):
    models = client.get("/api/models").json()
    assert models[0]["name"] == "clf" and models[0]["aliases"] == {"production": 1}
    model = client.get("/api/models/clf").json()
    assert model["versions"][0]["run_id"] == web_project.runs[0]
    assert model["alias_history"][0]["alias"] == "production"
    version = client.get("/api/models/clf/versions/1").json()
    assert version["signature"] is not None and version["pickled"] is True
    lineage = client.get(f"/api/lineage/{web_project.runs[0]}", params={"target": "fit"}).json()
    assert lineage["artifact"]["produced_by"]["step"] == "3_fit"
    assert "0_make" in lineage["mermaid"]
    forward = client.get(
        f"/api/lineage/{web_project.runs[0]}", params={"target": "make", "forward": True}
    ).json()
    assert {u["step"] for u in forward["used_by"]} == {"1_features", "2_labels"}


def test_predict_csv_roundtrip_and_signature_errors(client: TestClient):
    csv = {"content-type": "text/csv"}
    ok = client.post("/api/models/clf@production/predict", content=b"x\n1\n15\n", headers=csv)
    assert ok.status_code == 200
    assert ok.text.splitlines() == ["x,prediction", "1.0,0", "15.0,1"]
    assert "attachment" in ok.headers["content-disposition"]
    files = {"file": ("in.csv", b"x\n2\n", "text/csv")}
    form = client.post("/api/models/clf/1/predict", files=files)
    assert form.status_code == 200 and form.text.splitlines()[1] == "2.0,0"
    missing = client.post("/api/models/clf@production/predict", content=b"z\n1\n", headers=csv)
    assert missing.status_code == 422 and missing.json()["error"]["field"] is not None
    empty = client.post("/api/models/clf@production/predict", content=b"", headers=csv)
    assert empty.status_code == 422


def test_launch_form_start_and_follow(client: TestClient, web_project: WebProject):
    spec = client.get("/api/launch/workflows/slow/config").json()
    assert {f["key"] for f in spec["fields"]} == {"steps", "delay"}
    bad = client.post("/api/launch", json={"workflow": "slow", "overrides": ["nope"]})
    assert bad.status_code == 422
    unknown = client.post("/api/launch", json={"workflow": "slow", "overrides": ["stepz=2"]})
    assert unknown.status_code == 422
    started = client.post(
        "/api/launch", json={"workflow": "slow", "overrides": ["steps=2", "delay=0.05"]}
    )
    assert started.status_code == 202
    launch_id = started.json()["id"]
    deadline = time.monotonic() + 120
    state = started.json()
    while state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = client.get(f"/api/launch/{launch_id}").json()
    assert state["state"] == "succeeded", state["output"]
    run = client.get(f"/api/runs/{state['run_id']}").json()
    assert run["status"] == "succeeded" and run["config"] == {"steps": 2, "delay": 0.05}
    assert run["tags"]["qflow.launch"] == launch_id


def test_dashboard_pages_and_static_files_are_served(client: TestClient, web_project: WebProject):
    for path in (
        "/",
        "/runs",
        f"/runs/{web_project.runs[0]}",
        "/compare",
        "/models/clf",
        "/predict/clf/1",
        "/launch/slow",
        f"/lineage/{web_project.runs[0]}",
        "/sweeps",
    ):
        page = client.get(path)
        assert page.status_code == 200 and "/static/app/assets/" in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
    scripts = re.findall(r'src="/static/(app/assets/[^"]+\.js)"', client.get("/runs").text)
    assert scripts
    js = client.get(f"/static/{scripts[0]}", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and js.headers["content-encoding"] == "gzip"
    assert "immutable" in js.headers["cache-control"]
    assert "plotly" not in client.get("/runs").text  # the chart library is loaded lazily
    plotly = client.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert client.get("/static/app.js").status_code == 404


def test_runs_carry_flattened_config_name_and_commit(client: TestClient, web_project: WebProject):
    page = client.get("/api/runs", params={"workflow": "train"}).json()
    assert page["config_keys"] == ["C", "n"]
    by_id = {r["id"]: r for r in page["runs"]}
    assert by_id[web_project.runs[1]]["config"] == {"C": 0.1, "n": 20}
    assert by_id[web_project.runs[0]]["config"]["C"] == 1.0
    assert "git_commit" in by_id[web_project.runs[0]]
    assert page["tag_keys"] == ["team"]
    found = client.get("/api/runs", params={"filter": "config.C < 0.5"}).json()
    assert [r["id"] for r in found["runs"]] == [web_project.runs[1]]


def test_free_text_search_groups_and_csv(client: TestClient, web_project: WebProject):
    first = web_project.runs[0]
    hit = client.get("/api/runs", params={"q": first[-10:]}).json()
    assert [r["id"] for r in hit["runs"]] == [first]
    assert client.get("/api/runs", params={"q": "no-such-run-'x"}).json()["runs"] == []
    groups = client.get("/api/runs/groups", params={"by": "config.C", "workflow": "train"}).json()
    assert sorted((g["value"], g["count"]) for g in groups["groups"]) == [("0.1", 1), ("1.0", 1)]
    teams = client.get("/api/runs/groups", params={"by": "tags.team", "workflow": "train"}).json()
    assert teams["groups"] == [{"value": "a", "count": 2}]
    exported = client.get("/api/runs.csv", params={"workflow": "train"})
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0].startswith("id,name,workflow,status")
    assert "config.C" in lines[0] and "metrics.loss" in lines[0] and len(lines) == 3


def test_tags_name_note_and_bulk_lifecycle(client: TestClient, web_project: WebProject):
    from qflow.web.app import create_app
    from tests.unit.web.conftest import TOKEN, make_settings

    run = web_project.runs[1]
    tags = client.post(f"/api/runs/{run}/tags", json={"tags": {"name": "<b>small C</b>"}}).json()
    assert tags["name"] == "<b>small C</b>"
    row = client.get("/api/runs", params={"q": "small C"}).json()["runs"]
    assert [r["id"] for r in row] == [run] and row[0]["name"] == "<b>small C</b>"
    done = client.post("/api/runs/bulk", json={"runs": [run], "tags": {"reviewed": "yes"}})
    assert done.status_code == 200
    assert client.get(f"/api/runs/{run}").json()["tags"]["reviewed"] == "yes"
    archived = client.post("/api/runs/bulk", json={"runs": [run], "action": "archive"}).json()
    assert archived["lifecycle"] == {run: "archived"}
    assert run not in [r["id"] for r in client.get("/api/runs").json()["runs"]]
    client.post("/api/runs/bulk", json={"runs": [run], "action": "restore"})
    assert run in [r["id"] for r in client.get("/api/runs").json()["runs"]]
    # With the session cookie (the browser), a write needs the CSRF header.
    app = create_app(make_settings(web_project))  # type: ignore[arg-type]
    with TestClient(app) as browser:
        browser.get(f"/runs?token={TOKEN}")
        refused = browser.post("/api/runs/bulk", json={"runs": [run], "action": "archive"})
        assert refused.status_code == 403
        csrf = browser.cookies.get("qflow_csrf")
        ok = browser.post(
            "/api/runs/bulk",
            json={"runs": [run], "tags": {"via": "browser"}},
            headers={"X-CSRF-Token": csrf or ""},
        )
        assert ok.status_code == 200


def test_openapi_schema_lists_the_api(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/history",
        "/api/compare",
        "/api/models",
        "/api/launch",
        "/api/store/create_run",
    } <= set(paths)


def test_registry_edits_aliases_descriptions_and_tags(client: TestClient):
    moved = client.post("/api/models/clf/aliases/staging", json={"version": 1})
    assert moved.status_code == 200 and moved.json()["version"] == 1
    assert client.get("/api/models/clf").json()["aliases"]["staging"] == 1
    client.post("/api/models/clf/description", json={"text": "churn classifier"})
    client.post("/api/models/clf/description", json={"text": "first cut", "version": 1})
    client.post("/api/models/clf/tags", json={"tags": {"owner": "ds"}})
    client.post("/api/models/clf/tags", json={"tags": {"checked": "yes"}, "version": 1})
    model = client.get("/api/models/clf").json()
    assert model["description"] == "churn classifier" and model["tags"]["owner"] == "ds"
    assert model["versions"][0]["description"] == "first cut"
    assert model["versions"][0]["tags"] == {"checked": "yes"}
    removed = client.post("/api/models/clf/aliases/staging", json={"version": None}).json()
    assert removed["version"] is None and removed["previous_version"] == 1
    assert "staging" not in client.get("/api/models/clf").json()["aliases"]
    missing = client.post("/api/models/clf/aliases/x", json={"version": 99})
    assert missing.status_code == 404


def test_figures_folders_and_series_previews(
    client: TestClient, web_project: WebProject, tmp_path: Path
):
    import pandas as pd

    from qflow.store.artifacts import ArtifactStore
    from qflow.store.metadata.store import MetadataStore

    run = web_project.runs[0]
    artifacts = ArtifactStore(web_project.artifacts_url)
    metadata = MetadataStore(web_project.store_url)
    page = (
        b'<html><head><script charset="utf-8" src="https://cdn.plot.ly/plotly-3.0.1.min.js">'
        b'</script></head><body><div id="f"></div><script>Plotly.newPlot("f", [])</script>'
        b"</body></html>"
    )
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("A")
    refs = {
        "figures/loss.html": artifacts.put(page),
        "images": artifacts.put(folder),
        "scores": artifacts.put(pd.Series([0.5, 0.75], name="score")),
    }
    try:
        for name, ref in refs.items():
            metadata.log_run_artifact(run, name, ref)
    finally:
        metadata.dispose()
    base = f"/api/runs/{run}/artifacts"
    figure = refs["figures/loss.html"].key
    assert client.get(f"{base}/{figure}/preview").json()["kind"] == "html"
    shown = client.get(f"{base}/{figure}/figure")
    assert b"cdn.plot.ly" not in shown.content
    assert b'src="/static/vendor/plotly.min.js"' in shown.content
    assert shown.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert "allow-same-origin" not in shown.headers["content-security-policy"]
    assert shown.headers["x-frame-options"] == "SAMEORIGIN"  # framed by the run page only
    assert client.get(f"{base}/{figure}/raw").headers["x-frame-options"] == "DENY"
    assert client.get("/runs").headers["x-frame-options"] == "DENY"
    not_html = refs["images"].key
    assert client.get(f"{base}/{not_html}/figure").status_code == 404
    tar = client.get(f"{base}/{not_html}/raw")
    assert tar.headers["content-disposition"] == 'attachment; filename="images.tar"'
    assert tar.headers["content-type"] == "application/x-tar"
    series = client.get(f"{base}/{refs['scores'].key}/preview").json()
    assert series["columns"] == ["score"] and series["rows"] == [[0.5], [0.75]]


def test_a_cached_step_links_to_the_step_it_was_cached_from(
    client: TestClient, web_project: WebProject
):
    first, second = web_project.runs
    steps = client.get(f"/api/runs/{second}").json()["steps"]
    cached = next(s for s in steps if s["cached_from"] is not None)
    page = client.get(f"/step-runs/{cached['cached_from']}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == f"/runs/{first}/steps/{cached['name']}"
    missing = client.get("/step-runs/999999", follow_redirects=False)
    assert missing.status_code == 404 and "999999" in missing.text
