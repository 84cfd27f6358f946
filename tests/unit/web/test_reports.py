"""The step report routes over a real run's stores: which steps have a report, the page for the
dashboard's sandboxed frame, the offline download, and a step without one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.report_project import run_reported, write_project
from tests.unit.web.conftest import TOKEN, WebProject, make_settings

pytest.importorskip("plotly")


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    from qflow.web.app import create_app

    root = write_project(tmp_path_factory.mktemp("reports") / "proj")
    run_id = run_reported(root)
    project = WebProject(
        root, f"sqlite:///{root / '.qflow' / 'qflow.db'}", str(root / ".qflow" / "artifacts"), []
    )
    app = create_app(make_settings(project))  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client, run_id


def test_the_run_lists_the_steps_with_a_report(reported: tuple[TestClient, str]):
    client, run_id = reported
    (listed,) = client.get(f"/api/runs/{run_id}/reports").json()
    assert listed["step"] == "1_summarize" and len(listed["key"]) == 64


def test_the_report_is_a_sandboxed_page_that_loads_plotly_from_this_server(
    reported: tuple[TestClient, str],
):
    client, run_id = reported
    response = client.get(f"/api/runs/{run_id}/steps/summarize/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts; frame-ancestors 'self'; default-src 'none';")
    assert "http://testserver/static/vendor/plotly.min.js" in policy
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert "content-disposition" not in response.headers
    assert "<h1>Model summary</h1>" in response.text and len(response.text) < 100_000


def test_the_download_is_one_file_with_plotly_inside(reported: tuple[TestClient, str]):
    client, run_id = reported
    response = client.get(f"/api/runs/{run_id}/steps/1_summarize/report?download=1")
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="1_summarize.html"'
    assert "/static/vendor" not in response.text and len(response.text) > 1_000_000


def test_a_step_without_a_report_is_a_404_that_names_the_ones_with_one(
    reported: tuple[TestClient, str],
):
    client, run_id = reported
    response = client.get(f"/api/runs/{run_id}/steps/scores/report")
    assert response.status_code == 404
    assert "Steps with a report: 1_summarize." in response.json()["error"]["message"]
    assert client.get(f"/api/runs/{run_id}/steps/nope/report").status_code == 404
