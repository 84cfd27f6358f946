from __future__ import annotations

import base64
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from qflow.ci.render import render_html, render_markdown
from qflow.ci.report import (
    ReportData,
    collect,
    find_run,
    metric_rows,
    resolve_baseline,
    sparkline,
    write_report,
)
from qflow.cli.app import run_cli
from qflow.client import Client
from qflow.errors import ConfigError, RunNotFoundError
from qflow.store.metadata.records import Metric

from .conftest import git


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def latest(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _ = cli(capsys, "runs", "--json", "--limit", "1")
    assert code == 0
    return str(json.loads(out)[0]["id"])


@pytest.fixture
def two_runs(
    ci_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A run on main, then one on branch feature with changed code and config."""
    assert cli(capsys, "run", "train", "epochs=4")[0] == 0
    base = latest(capsys)
    git(ci_project, "checkout", "-q", "-b", "feature")
    source = ci_project / "ciwf.py"
    source.write_text(source.read_text().replace("loss * (1 - lr)", "loss * (1 - 1.5 * lr)"))
    git(ci_project, "commit", "-q", "-am", "faster")
    monkeypatch.delitem(sys.modules, "ciwf", raising=False)
    assert cli(capsys, "run", "train", "epochs=5", "--tag", "github_comment=77")[0] == 0
    return base, latest(capsys)


def test_markdown_report_against_the_base_branch(
    two_runs: tuple[str, str],
    ci_project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, head = two_runs
    monkeypatch.setenv("QFLOW_BASE_BRANCH", "main")
    out_dir = ci_project / "report"
    code, _, err = cli(
        capsys, "report", "--tag", "github_comment=77", "--compare-to", "base", "-o", str(out_dir)
    )
    assert code == 0, err
    text = (out_dir / "report.md").read_text()
    assert f"## QFlow run `{head}`: train succeeded" in text
    assert "| branch" not in text  # summary rows are run/workflow/status/…
    assert "| git |" in text and "(feature)" in text
    # Metrics table with the baseline's values and deltas.
    assert "| metric | value | min | max | points | trend | baseline | Δ | Δ % |" in text
    loss_row = next(line for line in text.splitlines() if line.startswith("| loss |"))
    assert "| 5 |" in loss_row and "█" in loss_row and "▁" in loss_row
    # Plots: a PNG per metric with a history, referenced relatively.
    png = out_dir / "plots" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![loss](plots/loss.png)" in text
    assert not (out_dir / "plots" / "accuracy.png").exists()  # one point: no plot
    # The comparison: which run, config, code and the code diff.
    assert f"Against run `{base}` (the latest succeeded run of 'train' on branch 'main')" in text
    assert "| config | epochs | 4 | 5 |" in text
    assert "-        loss = loss * (1 - lr)" in text
    assert "+        loss = loss * (1 - 1.5 * lr)" in text
    assert "| environment | git.branch | main | feature |" in text


def test_html_report_embeds_the_plots(
    two_runs: tuple[str, str], ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = two_runs
    out_dir = ci_project / "html"
    code, _, err = cli(
        capsys, "report", head[:12], "--format", "html", "--compare-to", base, "-o", str(out_dir)
    )
    assert code == 0, err
    page = (out_dir / "report.html").read_text()
    marker = "src='data:image/png;base64,"
    start = page.index(marker) + len(marker)
    data = base64.b64decode(page[start : page.index("'", start)])
    assert data[:4] == b"\x89PNG"
    assert "<h2>Comparison</h2>" in page and base in page
    assert "loss * (1 - 1.5 * lr)" in page


def test_baseline_choices(two_runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    base, head = two_runs
    client = Client()
    run = client.metadata.get_run(head)
    assert resolve_baseline(client.metadata, run, None) == (None, "")
    assert resolve_baseline(client.metadata, run, "branch:main")[0].id == base  # type: ignore[union-attr]
    found, note = resolve_baseline(client.metadata, run, "latest-on-branch")
    assert found is None and "on branch 'feature'" in note
    found, note = resolve_baseline(client.metadata, run, "branch:release")
    assert found is None and "No earlier succeeded run" in note
    monkeypatch.delenv("QFLOW_BASE_BRANCH", raising=False)
    with pytest.raises(ConfigError, match="QFLOW_BASE_BRANCH"):
        resolve_baseline(client.metadata, run, "base")
    with pytest.raises(RunNotFoundError, match="No run is tagged"):
        find_run(client.metadata, None, "github_comment=0")
    # Without a baseline the report says so, and still has metrics and trackers.
    data = collect(client.metadata, run, compare_to="branch:release")
    assert data.diff is None and {r["key"] for r in data.metrics} == {"accuracy", "loss"}


def test_report_escapes_what_runs_contain(
    ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "run", "train")[0] == 0
    run = Client().metadata.get_run(latest(capsys))
    hostile = dataclasses.replace(run, workflow="a|b<script>", error="x\n| y <img src=x>")
    data = ReportData(
        run=hostile,
        trackers=[],
        metrics=metric_rows([Metric("m|<b>", 1.0, None, 0.0, None)], None),
    )
    text = render_markdown(data, {})
    assert "a\\|b&lt;script&gt;" in text and "<script>" not in text and "<img" not in text
    assert "| m\\|&lt;b&gt; | 1 |" in text
    page = render_html(data, {})
    assert "<script>" not in page and "&lt;script&gt;" in page and "<img" not in page


def test_tracker_ids_from_tags_and_config(
    ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "run", "train", "--tag", "mlflow.run_id=abc123")[0] == 0
    client = Client()
    run = client.metadata.get_run(latest(capsys))
    path = write_report(client.metadata, run, ci_project / "t")
    assert "| mlflow | run_id abc123 |" in path.read_text()


def test_sparkline() -> None:
    assert sparkline([1.0]) == ""
    assert sparkline([0.0, 1.0, 0.5]) == "▁█▄"
    assert sparkline([1.0, float("nan"), 2.0]) == "▁ █"
