"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
runs table, filter, run page with a chart, comparison, launching a run and watching it finish,
and predictions. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.web
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _until(check: object, seconds: float = 30) -> None:
    """Poll ``check`` (the page's CSP forbids the string eval ``wait_for_function`` needs)."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """``qflow ui`` over a project with two runs and a model; yields (login URL, run ids)."""
    import httpx

    import qflow as qf
    from tests.fixtures.web_project import write_project

    with pytest.MonkeyPatch.context() as mp:
        for name in ("QFLOW_STORE", "QFLOW_ARTIFACTS", "QFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        root = write_project(tmp_path_factory.mktemp("e2e") / "proj")
        mp.syspath_prepend(str(root))
        first = qf.run("train", project_dir=root)
        second = qf.run("train", overrides=["C=0.1"], project_dir=root)
        qf.models.register(first, "fit", name="clf", project_dir=root)
        sys.modules.pop("webwf", None)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "qflow", "ui", "--port", str(port)],
        cwd=root,
        env={**env, "NO_COLOR": "1"},
        text=True,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    match = re.search(r"(http://\S+\?token=\S+)", process.stderr.readline())
    assert match is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield match.group(1), [first.id, second.id]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, server: tuple[str, list[str]]) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server[0])  # the token URL signs in and lands on /runs
    yield page
    context.close()
    assert errors == []


def test_runs_table_filter_and_run_page_with_chart(
    page: object, server: tuple[str, list[str]], tmp_path: Path
):
    p = page  # type: ignore[assignment]
    first, second = server[1]
    p.wait_for_selector("#runs table")
    assert p.locator("#runs tbody tr").count() == 2
    assert "metrics.accuracy" in p.inner_text("#runs thead")
    p.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
    p.fill("#filter", "params.C = 0.1")
    p.press("#filter", "Enter")
    expect(p.locator("#runs tbody tr")).to_have_count(1)
    assert p.get_attribute("#runs tbody tr", "data-run") == second
    p.fill("#filter", "metrics.accuracy >")
    p.press("#filter", "Enter")
    p.wait_for_selector(".error")
    assert "expected a value" in p.inner_text(".error")
    p.fill("#filter", "")
    p.press("#filter", "Enter")
    expect(p.locator("#runs tbody tr")).to_have_count(2)
    p.click(f"a[href='/runs/{first}']")
    p.wait_for_selector("[data-metric='loss'] .main-svg")  # plotly drew the chart
    p.wait_for_selector("#timeline .tl-bar")
    assert p.locator("#timeline .tl-row").count() == 4
    _until(lambda: p.locator("#graph").evaluate("img => img.complete && img.naturalWidth") > 0)
    p.wait_for_selector("#logs pre.stdout")
    assert "fitted with C 1.0" in p.inner_text("#logs")
    p.click("tr:has-text('sample.csv') >> text=Preview")
    p.wait_for_selector("#preview .preview-table")
    assert "x" in p.inner_text("#preview .preview-table")
    p.screenshot(path=str(tmp_path / "run.png"), full_page=True)


def test_compare_two_runs(page: object, server: tuple[str, list[str]], tmp_path: Path):
    p = page  # type: ignore[assignment]
    p.wait_for_selector("#runs table")
    for box in p.locator("#runs tbody input[type=checkbox]").all():
        box.check()
    p.click("#compare")
    p.wait_for_selector("tr.diff")
    assert "C" in p.inner_text("tr.diff")
    p.wait_for_selector("#parcoords svg polyline")
    assert p.locator("#parcoords svg polyline").count() == 2
    p.wait_for_selector("[data-metric='loss'] .main-svg")
    p.screenshot(path=str(tmp_path / "compare.png"), full_page=True)


def test_launch_a_run_and_watch_it_finish(
    page: object, server: tuple[str, list[str]], tmp_path: Path
):
    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    p.goto(f"{base}/launch/slow")
    p.wait_for_selector("form.launch input[name='steps']")
    p.fill("input[name='steps']", "8")
    p.fill("input[name='delay']", "0.4")
    p.click("#launch")
    p.wait_for_selector("#launched-status .status.running", timeout=60_000)
    run_link = p.locator("#progress a[href^='/runs/']").first.get_attribute("href")
    p.screenshot(path=str(tmp_path / "launch-running.png"), full_page=True)
    live = p.context.new_page()
    live.goto(f"{base}{run_link}")
    live.wait_for_selector("[data-metric='progress'] .main-svg", timeout=60_000)
    p.wait_for_selector("#launched-status .status.succeeded", timeout=90_000)
    live.wait_for_selector("#run-status .status.succeeded", timeout=30_000)
    chart = live.locator("[data-metric='progress']")
    _until(lambda: chart.evaluate("node => node.data[0].x.length") == 8)
    live.screenshot(path=str(tmp_path / "launched-run.png"), full_page=True)
    p.screenshot(path=str(tmp_path / "launch-done.png"), full_page=True)


def test_predict_page_returns_a_csv(page: object, server: tuple[str, list[str]], tmp_path: Path):
    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    p.goto(f"{base}/models/clf")
    p.wait_for_selector("a[href^='/predict/']")
    p.click("a[href^='/predict/']")
    upload = tmp_path / "input.csv"
    upload.write_text("x\n1\n15\n")
    p.set_input_files("#csv", str(upload))
    p.click("#predict")
    p.wait_for_selector("#download")
    with p.expect_download() as info:
        p.click("#download")
    saved = tmp_path / "predictions.csv"
    info.value.save_as(saved)
    assert saved.read_text().splitlines() == ["x,prediction", "1.0,0", "15.0,1"]


def test_lineage_and_model_pages(page: object, server: tuple[str, list[str]], tmp_path: Path):
    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    first = server[1][0]
    p.goto(f"{base}/runs/{first}")
    p.click("tr:has-text('3_fit.return') >> text=lineage")
    p.wait_for_selector("ul.tree")
    tree = p.inner_text("ul.tree")
    assert "3_fit" in tree and "0_make" in tree and "1_features" in tree
    p.click("text=who used it")
    p.wait_for_selector("h1:has-text('Used by')")
    p.goto(f"{base}/models")
    p.click("a[href='/models/clf']")
    p.wait_for_selector("text=Alias history")
    assert first in p.inner_text("main")
    p.screenshot(path=str(tmp_path / "model.png"), full_page=True)
