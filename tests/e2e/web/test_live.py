"""A running run's page kept live by server push, in Debian's headless Chromium: ``qflow run``
in its own process logs a point and prints a line, then waits for a file the test writes; each
point must reach the chart and each line the logs panel over the run's event stream (no history
fetch, no polling) while the step that logs them is still running, and the page must show the
run's end without a reload. With the stream refused, the page polls and shows the same."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import qflow_server

pytestmark = pytest.mark.web
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
TOKEN = "live-token-0123456789"
POINTS = 3
WORKFLOW = f"""
import time
from pathlib import Path

import qflow as qf


@qf.step
def gated(gate: str) -> int:
    # Point i is logged and said, then the step waits for the file go<i> (the test writes it).
    for i in range({POINTS}):
        qf.log_metric("progress", float(i), step=i)
        print(f"point {{i}} logged")
        while not (Path(gate) / f"go{{i}}").exists():
            time.sleep(0.02)
    return {POINTS}


@qf.workflow
def live(cfg):
    return gated(cfg.gate)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "live"\n[tool.qflow]\nworkflow-modules = ["livewf"]\n'
    )
    (root / "livewf.py").write_text(WORKFLOW)
    (root / "conf").mkdir()
    (root / "conf" / "live.yaml").write_text("gate: ''\n")
    return root


@pytest.fixture
def launched(project: Path, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """(server URL, id of the running run, gate folder): ``qflow server`` over the project and
    ``qflow run live`` started beside it, stopped at the end if the test did not finish it."""
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    with qflow_server(project, TOKEN) as url:
        run = subprocess.Popen(
            [sys.executable, "-m", "qflow", "run", "live", f"gate={gate}"],
            cwd=project,
            env={**env, "NO_COLOR": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            deadline = time.monotonic() + 60
            runs: list[dict[str, str]] = []
            while not runs:
                assert time.monotonic() < deadline and run.poll() is None, "no run started"
                runs = httpx.get(f"{url}/api/runs", headers=headers).json()["runs"]
                time.sleep(0.1)
            yield url, runs[0]["id"], gate
        finally:
            for i in range(POINTS):  # let the step end, whatever happened
                (gate / f"go{i}").touch()
            run.wait(timeout=60)


def _points(page: object) -> int:
    chart = page.locator("[data-metric='progress'] [data-points]")  # type: ignore[attr-defined]
    return int(chart.get_attribute("data-points") or 0)


@pytest.mark.parametrize("transport", ["stream", "poll"])
def test_chart_gains_points_while_the_step_runs(
    launched: tuple[str, str, Path], tmp_path: Path, transport: str
):
    """Pushed over the stream; or, when a proxy refuses the stream (503), by polling."""
    from playwright.sync_api import sync_playwright

    url, run_id, gate = launched
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context()
        context.add_cookies([{"name": "qflow_token", "value": TOKEN, "url": url}])
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if transport == "poll":
            page.route("**/stream*", lambda route: route.fulfill(status=503))
        page.goto(f"{url}/runs/{run_id}")
        expect(page.locator(f"#run-status[data-live='{transport}']")).to_have_count(1)
        running_step = page.locator("#timeline .tl-bar.running")
        for i in range(POINTS):
            # Point i is on the chart while the step waits for go<i>: it is still running.
            expect(page.locator("[data-metric='progress'] [data-points]")).to_have_attribute(
                "data-points", str(i + 1), timeout=30_000
            )
            # ... and so is the line the step printed, in the logs panel.
            expect(page.locator("#logs pre.stdout")).to_contain_text(
                f"point {i} logged", timeout=30_000
            )
            expect(running_step).to_have_count(1)
            assert page.locator("#run-status .status.running").count() == 1
            page.screenshot(path=str(tmp_path / f"{transport}-{i}.png"), full_page=True)
            (gate / f"go{i}").touch()
        # The run's end arrives on the stream too: status, step and logs without a reload.
        expect(page.locator("#run-status .status.succeeded")).to_have_count(1, timeout=60_000)
        expect(page.locator("#run-status[data-live='']")).to_have_count(1)
        expect(page.locator("#timeline .tl-bar.succeeded")).to_have_count(1)
        assert _points(page) == POINTS
        page.screenshot(path=str(tmp_path / f"{transport}-end.png"), full_page=True)
        api = [u.split(url, 1)[1] for u in requests if u.startswith(f"{url}/api/")]
        assert f"/api/runs/{run_id}/stream" in [u.split("?")[0] for u in api], api
        polled = [u for u in api if "/history" in u or u.endswith("/logs")]
        if transport == "stream":
            assert not polled, api
            assert api.count(f"/api/runs/{run_id}") == 1, api  # read once, then pushed
        else:
            assert polled, api
        browser.close()
    assert errors == []
