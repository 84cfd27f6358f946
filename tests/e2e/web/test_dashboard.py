"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
runs table (config columns, chooser, filter, search, groups), run page (charts, tiles,
timeline, artifacts, logs), comparison, a launched run whose chart grows live, predictions,
lineage, models, and markup in run notes. Screenshots go to the test's tmp folder."""

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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str], Path]]:
    """``qflow ui`` over a project with two runs and a model; yields (login URL, run ids,
    project folder)."""
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
        yield match.group(1), [first.id, second.id], root
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


def _points(chart: object) -> int:
    return int(chart.locator("[data-points]").get_attribute("data-points") or 0)  # type: ignore[attr-defined]


def test_runs_table_filter_columns_and_run_page(
    page: object, server: tuple[str, list[str]], tmp_path: Path
):
    p = page  # type: ignore[assignment]
    first, second = server[1]
    p.wait_for_selector("#runs table")
    assert p.locator("#runs tbody tr").count() == 2
    expect(p.locator("#workflow option[value='train']")).to_have_text("train (2)")  # after rows
    head = p.inner_text("#runs thead")
    assert "metrics.accuracy" in head and "config.C" in head and "config.n" in head
    p.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
    # Column chooser: hiding a column is remembered across reloads (localStorage).
    p.click("#columns")
    p.uncheck("#chooser input[data-column='config.n']")
    expect(p.locator("#runs thead th[data-column='config.n']")).to_have_count(0)
    p.reload()
    p.wait_for_selector("#runs table")
    expect(p.locator("#runs thead th[data-column='config.n']")).to_have_count(0)
    expect(p.locator("#runs thead th[data-column='config.C']")).to_have_count(1)
    # Server-side filter on a config value; a bad filter clears the rows.
    p.fill("#filter", "config.C < 0.5")
    p.press("#filter", "Enter")
    expect(p.locator("#runs tbody tr")).to_have_count(1)
    assert p.get_attribute("#runs tbody tr", "data-run") == second
    p.fill("#filter", "metrics.accuracy >")
    p.press("#filter", "Enter")
    p.wait_for_selector(".error")
    assert "expected a value" in p.inner_text(".error")
    expect(p.locator("#runs tbody tr")).to_have_count(0)
    p.fill("#filter", "")
    p.press("#filter", "Enter")
    expect(p.locator("#runs tbody tr")).to_have_count(2)
    # Free-text search and group counts.
    p.fill("#search", first[-12:])
    expect(p.locator("#runs tbody tr")).to_have_count(1)
    p.fill("#search", "")
    expect(p.locator("#runs tbody tr")).to_have_count(2)
    p.select_option("#group-by", "config.C")
    p.wait_for_selector("#groups td")
    assert p.locator("#groups tbody tr").count() == 2
    p.screenshot(path=str(tmp_path / "runs-grouped.png"), full_page=True)
    p.click("#chart-view")  # one metric over the visible runs, one line per run
    p.wait_for_selector("[data-metric='runs-overlay'] canvas")
    assert p.locator("[data-metric='runs-overlay'] .u-legend .u-series").count() == 3  # x + 2
    # Per group of the "group by" key (config.C: one run each): a mean line over a min–max band.
    p.check("#chart-mean")
    legend = p.locator("[data-metric='runs-overlay'] .u-legend")
    expect(legend.locator(".u-series")).to_have_count(7)  # x + 2 groups x (mean, min, max)
    labels = legend.inner_text()
    assert "config.C=0.1 (1)" in labels and "config.C=1 (1) max" in labels
    p.screenshot(path=str(tmp_path / "runs-charts.png"), full_page=True)
    p.select_option("#group-by", "")  # no key: one group, all the runs
    expect(legend.locator(".u-series")).to_have_count(4)
    p.select_option("#chart-metric", "loss")
    expect(p.locator("[data-metric='runs-overlay'] [data-points='300']")).to_have_count(1)
    with p.expect_download() as info:
        p.click("[data-metric='runs-overlay'] button:text('CSV')")
    rows = Path(info.value.path()).read_text().splitlines()
    assert rows[0] == "series,x,y,min,max" and len(rows) == 301  # loss: 300 steps
    label, x, mean, low, high = rows[138].rsplit(",", 4)  # step 137: 1/138 + 5 in both runs
    assert label == '"all runs (2)"' and x == "137" and float(low) <= float(mean) <= float(high)
    assert abs(float(mean) - (1 / 138 + 5)) < 1e-9
    p.screenshot(path=str(tmp_path / "runs-charts-band.png"), full_page=True)
    p.click(f"#runs a[href='/runs/{first}']")
    p.wait_for_selector("[data-metric='loss'] canvas")  # uPlot drew the chart
    assert _points(p.locator("[data-metric='loss']")) > 10
    assert p.locator("[data-tile='accuracy']").count() == 1  # one point: a tile, not a chart
    assert p.locator("[data-metric='accuracy']").count() == 0
    assert "loss" in p.inner_text("#metric-table")
    p.check("#log-scale")
    p.select_option("#x-mode", "relative")
    p.wait_for_selector("[data-metric='loss'] canvas")
    p.wait_for_selector("#timeline .tl-bar")
    assert p.locator("#timeline .tl-row").count() == 4
    p.locator("#graph").scroll_into_view_if_needed()  # drawn (by Graphviz) once in view
    _until(lambda: p.locator("#graph").evaluate("img => img.complete && img.naturalWidth") > 0)
    assert p.locator("text=Loading…").count() == 0
    p.locator("#timeline summary").nth(3).click()
    assert "C" in p.inner_text("#timeline .tl-detail >> nth=3")
    p.wait_for_selector("#logs pre.stdout")
    assert "fitted with C 1.0" in p.inner_text("#logs")
    p.click("[data-artifact='sample.csv']")
    p.wait_for_selector("#preview .preview-table")
    assert "a" in p.inner_text("#preview .preview-table")
    assert "KB" in p.inner_text("#artifact-tree") or " B" in p.inner_text("#artifact-tree")
    assert "builtins." not in p.inner_text("#artifact-tree")
    assert "Share" not in p.inner_text("main")
    p.screenshot(path=str(tmp_path / "run.png"), full_page=True)


def test_run_names_are_text_not_markup(page: object, server: tuple[str, list[str]]):
    import httpx

    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    token = server[0].split("token=")[1]
    first = server[1][0]
    evil = "<img src=x onerror=\"document.title='pwned'\">"
    httpx.post(
        f"{base}/api/runs/{first}/tags",
        json={"tags": {"note": evil}},
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()
    p.goto(f"{base}/runs/{first}")
    p.wait_for_selector("#note")
    assert p.inner_text("#note") == evil
    assert p.locator("main img[src='x']").count() == 0
    p.goto(f"{base}/runs?q=onerror")
    p.wait_for_selector("#runs table")
    assert evil in p.inner_text("#runs tbody")
    assert p.locator("#runs img").count() == 0 and p.title() != "pwned"


def test_compare_two_runs(page: object, server: tuple[str, list[str]], tmp_path: Path):
    p = page  # type: ignore[assignment]
    p.wait_for_selector("#runs table")
    for box in p.locator("#runs tbody input[type=checkbox]").all():
        box.check()
    p.click("#compare")
    p.wait_for_selector("#config-diff tr.diff")
    assert "C" in p.inner_text("#config-diff tr.diff")
    assert "C" in p.inner_text("#param-diff tr.diff")
    p.wait_for_selector("#parcoords svg polyline")
    assert p.locator("#parcoords svg polyline").count() == 2
    p.wait_for_selector("#scatter canvas")
    p.wait_for_selector("[data-metric='loss'] canvas")
    p.screenshot(path=str(tmp_path / "compare.png"), full_page=True)


def test_launch_a_run_and_watch_its_chart_grow_live(
    page: object, server: tuple[str, list[str]], tmp_path: Path
):
    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    p.goto(f"{base}/launch/slow")
    p.wait_for_selector("form.launch input[name='steps']")
    p.fill("input[name='steps']", "12")
    p.fill("input[name='delay']", "0.5")
    p.click("#launch")
    p.wait_for_selector("#launched-status .status.running", timeout=60_000)
    run_link = p.locator("#progress a[href^='/runs/']").first.get_attribute("href")
    live = p.context.new_page()
    live.goto(f"{base}{run_link}")
    chart = live.locator("[data-metric='progress']")
    chart.wait_for(timeout=60_000)
    # The chart gains points while the one step that logs them is still running.
    seen: list[int] = []

    def grew_while_running() -> bool:
        if live.locator("#run-status .status.running").count() == 0:
            return True  # finished: checked below
        seen.append(_points(chart))
        return len(set(seen)) >= 2 and 0 < seen[-1] < 12

    _until(grew_while_running, 60)
    assert len(set(seen)) >= 2 and 0 < max(seen) < 12, seen
    live.screenshot(path=str(tmp_path / "live-run.png"), full_page=True)
    live.wait_for_selector("#run-status .status.succeeded", timeout=60_000)
    _until(lambda: _points(chart) == 12)
    live.wait_for_selector("#logs")
    live.screenshot(path=str(tmp_path / "launched-run.png"), full_page=True)


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
    p.click("[data-artifact='3_fit.return']")
    p.click("#preview >> text=lineage")
    p.wait_for_selector("#lineage")
    tree = p.inner_text("#lineage")
    assert "3_fit" in tree and "0_make" in tree and "1_features" in tree
    p.click("text=who used it")
    p.wait_for_selector("h1:has-text('Used by')")
    p.goto(f"{base}/lineage/{first}?target=0_make.return&forward=true")
    p.wait_for_selector("#lineage li")
    used = p.inner_text("#lineage")
    assert "1_features" in used and "3_fit" in used  # drawn forward, two levels deep
    p.goto(f"{base}/lineage/{first}")  # no target: the last step's output
    p.wait_for_selector("#lineage")
    assert "3_fit" in p.inner_text("#lineage")
    p.goto(f"{base}/models")
    p.click("a[href='/models/clf']")
    p.wait_for_selector("text=Alias history")
    assert first in p.inner_text("#versions")
    p.screenshot(path=str(tmp_path / "model.png"), full_page=True)


def test_registry_editing_and_pickle_warning(
    page: object, server: tuple[str, list[str], Path], tmp_path: Path
):
    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    p.goto(f"{base}/models/clf")
    p.wait_for_selector("#versions")
    p.click("#edit-model-description")
    p.fill("#input-model-description", "churn <b>classifier</b>")
    p.click("#save-model-description")
    expect(p.locator("#model-description")).to_contain_text("churn <b>classifier</b>")
    p.click("#edit-version-1-tags")
    p.fill("#input-version-1-tags", "checked=yes")
    p.click("#save-version-1-tags")
    expect(p.locator("tr[data-version='1']")).to_contain_text("checked=yes")
    p.fill("#alias-name", "staging")
    p.select_option("#alias-version", "1")
    p.click("#set-alias")
    expect(p.locator("tr[data-version='1'] .alias")).to_contain_text("staging")
    expect(p.locator("#alias-history")).to_contain_text("staging")
    p.click("[data-remove-alias='staging']")
    expect(p.locator("[data-remove-alias='staging']")).to_have_count(0)
    expect(p.locator("#alias-history")).to_contain_text("1 → removed")
    assert p.locator("#signature table").count() >= 1
    p.screenshot(path=str(tmp_path / "model-edited.png"), full_page=True)
    p.click("tr[data-version='1'] a[href^='/predict/']")
    p.wait_for_selector("#pickle-warning")  # a scikit-learn model is stored as a pickle


def test_sweep_pages(page: object, server: tuple[str, list[str], Path], tmp_path: Path):
    from qflow.sweep.driver import start_sweep

    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    root = server[2]
    with pytest.MonkeyPatch.context() as mp:
        for name in ("QFLOW_STORE", "QFLOW_ARTIFACTS", "QFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        mp.syspath_prepend(str(root))
        mp.chdir(root)
        outcome = start_sweep(
            "train",
            params={"C": "float(0.01, 10)"},
            objective="accuracy",
            direction="maximize",
            trials=3,
            sampler="random",
            pruner="none",
            seed=1,
            project_dir=root,
        )
        sys.modules.pop("webwf", None)
    p.goto(f"{base}/sweeps")
    p.click(f"a[href='/sweeps/{outcome.sweep_id}']")
    p.wait_for_selector("#trials tbody tr")
    assert p.locator("#trials tbody tr").count() == 3
    assert "trial" in p.inner_text("#best")
    p.wait_for_selector("[data-metric='history'] canvas")
    p.screenshot(path=str(tmp_path / "sweep.png"), full_page=True)
    p.goto(f"{base}/runs?filter=sweep_id%20%3D%20'{outcome.sweep_id}'")
    expect(p.locator("#runs tbody tr")).to_have_count(3)
    assert "config.C" in p.inner_text("#runs thead")


def test_plotly_figure_in_a_sandboxed_frame(
    page: object, server: tuple[str, list[str], Path], tmp_path: Path
):
    import plotly.graph_objects as go

    from qflow.store.artifacts import ArtifactStore
    from qflow.store.metadata.store import MetadataStore

    p = page  # type: ignore[assignment]
    base = server[0].split("/runs")[0]
    root, first = server[2], server[1][0]
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]))
    ref = ArtifactStore(str(root / ".qflow" / "artifacts")).put(
        figure.to_html(include_plotlyjs="cdn").encode()
    )
    metadata = MetadataStore(f"sqlite:///{root / '.qflow' / 'qflow.db'}")
    try:
        metadata.log_run_artifact(first, "figures/scatter.html", ref)
    finally:
        metadata.dispose()
    p.goto(f"{base}/runs/{first}")
    p.click("[data-artifact='figures/scatter.html']")
    frame = p.frame_locator("#figure")
    frame.locator(".main-svg").first.wait_for(timeout=30_000)  # drawn by the local plotly.js
    assert p.get_attribute("#figure", "sandbox") == "allow-scripts"
    assert not frame.locator(".modebar-btn[data-title^='Share']").first.is_visible()
    p.screenshot(path=str(tmp_path / "figure.png"), full_page=True)
