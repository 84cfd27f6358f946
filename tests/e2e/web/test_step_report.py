"""A step's report (``qf.report``) in real headless Chromium: ``qflow ui`` started with
``--token-file``; the run page links to the step page, whose sandboxed frame shows the report's
heading, table, image and Plotly figure while markup in the Markdown and a table cell stays
text; the downloaded HTML file draws the same in a browser context with no network; a running
step's report grows on its page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.report_project import run_reported, write_project
from tests.fixtures.servers import free_port, running

pytestmark = pytest.mark.web
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytest.importorskip("plotly")

from tests.e2e.web.test_dashboard import ARGS, CHROMIUM  # noqa: E402

TOKEN = "report-token-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, Path]]:
    """``qflow ui`` over a project with two ``reported`` runs (the second one's steps cached);
    yields (server URL, first run id, second run id, project folder)."""
    folder = tmp_path_factory.mktemp("report-ui")
    root = write_project(folder / "proj")
    run_id, cached_id = run_reported(root), run_reported(root)
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    command = [sys.executable, "-m", "qflow", "ui", "--port", str(port), "--token-file"]
    with pytest.MonkeyPatch.context() as mp:
        for name in ("QFLOW_STORE", "QFLOW_ARTIFACTS", "QFLOW_TRACKING_URI", "QFLOW_SERVER_TOKEN"):
            mp.delenv(name, raising=False)
        with running(
            [*command, str(token_file), "-C", str(root)],
            f"http://127.0.0.1:{port}",
            folder / "ui.log",
        ) as url:
            yield url, run_id, cached_id, root


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _check_report(view: object) -> None:
    """The report's heading, table, image and Plotly figure are drawn; no markup ran."""
    v = view  # type: ignore[assignment]
    expect(v.locator("h1")).to_have_text("Model summary")  # type: ignore[attr-defined]
    expect(v.locator("th", has_text="score")).to_be_visible()  # type: ignore[attr-defined]
    cell = "<script>document.body.dataset.xss = 'cell'</script>"
    expect(v.locator("td", has_text=cell)).to_be_visible()  # type: ignore[attr-defined]
    expect(v.locator("p", has_text="<script>document.body")).to_be_visible()  # type: ignore[attr-defined]
    image = v.locator("figure img")  # type: ignore[attr-defined]
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") > 100
    plotly = v.locator(".plotly .main-svg").first  # type: ignore[attr-defined]
    expect(plotly).to_be_visible(timeout=30_000)  # plotly.js is 4.8 MB
    expect(v.locator("body[data-xss]")).to_have_count(0)  # type: ignore[attr-defined]


def test_the_step_page_shows_the_report_in_a_sandboxed_frame_and_downloads_it(
    browser: object, served: tuple[str, str, str, Path], tmp_path: Path
):
    url, run_id, _, _ = served
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/runs/{run_id}?token={TOKEN}")
    page.locator("#timeline summary", has_text="1_summarize").click()
    page.locator("#timeline a.step-link[href$='/steps/1_summarize']").click()
    page.wait_for_url(f"**/runs/{run_id}/steps/1_summarize")
    frame = page.locator("iframe#report")
    expect(frame).to_have_attribute("sandbox", "allow-scripts")
    _check_report(page.frame_locator("iframe#report"))
    expect(page.locator("body[data-xss]")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "step-report.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#report-download")
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    context.close()
    assert errors == []

    offline = browser.new_context(offline=True)  # type: ignore[attr-defined]
    view = offline.new_page()
    view.goto(saved.as_uri())
    _check_report(view)
    view.screenshot(path=str(tmp_path / "offline-report.png"), full_page=True)
    offline.close()


def test_a_cached_step_shows_the_report_of_the_run_it_came_from(
    browser: object, served: tuple[str, str, str, Path]
):
    url, run_id, cached_id, _ = served
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{url}/runs/{cached_id}/steps/summarize?token={TOKEN}")
    expect(page.locator("h1")).to_contain_text("cached")
    expect(page.locator(".reason")).to_contain_text(f"cached from {run_id}/1_summarize")
    expect(page.frame_locator("iframe#report").locator("h1")).to_have_text("Model summary")
    context.close()


def _running_run(url: str, workflow: str) -> str:
    """The id of ``workflow``'s run once the server lists it as running."""
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = httpx.get(
            f"{url}/api/runs",
            params={"workflow": workflow},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).json()["runs"]
        if runs and runs[0]["status"] == "running":
            return str(runs[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"no running {workflow} run")


def test_a_running_steps_report_grows_on_its_page(
    browser: object, served: tuple[str, str, str, Path]
):
    url, _, _, root = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "qflow", "run", "live_report"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        run_id = _running_run(url, "live_report")
        page = context.new_page()
        page.goto(f"{url}/runs/{run_id}/steps/progress?token={TOKEN}")
        frame = page.frame_locator("iframe#report")
        expect(frame.locator("h1")).to_have_text("Started", timeout=30_000)
        expect(frame.locator("h2")).to_have_count(0)
        (root / "release").write_text("")  # the step reports again, then ends
        expect(frame.locator("h2")).to_have_text("Finished", timeout=30_000)
        expect(page.locator("h1")).to_contain_text("succeeded", timeout=30_000)
        assert process.wait(timeout=60) == 0
    finally:
        context.close()
        if process.poll() is None:
            process.kill()
            process.wait()
