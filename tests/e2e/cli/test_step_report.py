"""``qflow run`` of a workflow whose step calls ``qf.report`` (on the parallel executor, so the
report travels from a worker), then ``qflow step-report`` exports it as one offline HTML file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.report_project import run_reported, write_project

pytest.importorskip("plotly")
pytest.importorskip("matplotlib")


def _qflow(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "qflow", *args],
        cwd=root,
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project and the id of its ``reported`` run."""
    root = write_project(tmp_path_factory.mktemp("report") / "proj")
    return root, run_reported(root)


def test_step_report_writes_one_html_file_that_needs_no_network(
    reported: tuple[Path, str], tmp_path: Path
):
    root, run_id = reported
    target = tmp_path / "summary.html"
    done = _qflow(root, "step-report", run_id[:12], "summarize", str(target))
    assert done.returncode == 0, done.stderr
    assert f"Report of step summarize written to {target}" in " ".join(done.stderr.split())
    page = target.read_text(encoding="utf-8")
    assert "<title>Summary</title>" in page and "<h1>Model summary</h1>" in page
    assert "<h2>Interactive</h2>" in page  # the second qf.report call added to the same page
    assert "<th>score</th>" in page and '<td class="num">0.25</td>' in page
    assert "&lt;script&gt;document.body.dataset.xss = &#x27;cell&#x27;&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=" in page
    assert page.count('<img alt="figure" src="data:image/png;base64,') == 1
    assert page.count('class="qflow-plotly"') == 1 and "Plotly.newPlot" in page
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.DOTALL)
    assert re.search(r"""\s(src|href)=["']?(https?:|//)""", markup) is None
    piped = _qflow(root, "step-report", run_id, "1_summarize", "-")
    assert piped.returncode == 0 and piped.stdout == page


def test_step_report_says_which_steps_have_a_report(reported: tuple[Path, str]):
    root, run_id = reported
    done = _qflow(root, "step-report", run_id, "scores")
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "has no report: it did not call qf.report. Steps with a report: 1_summarize." in message
    done = _qflow(root, "step-report", run_id, "sumarize")
    assert done.returncode == 1 and "has no step 'sumarize'" in done.stderr
