from __future__ import annotations

import base64
import dataclasses
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from qflow.ci.render import (
    MAX_CHART_POINTS,
    MAX_COMMENT,
    mermaid_chart,
    render_html,
    render_markdown,
)
from qflow.ci.report import (
    ReportData,
    collect,
    find_run,
    metric_rows,
    resolve_baseline,
    runtime_rows,
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


MERMAID_PARSE = Path(__file__).with_name("mermaid_parse.mjs")


def mermaid_modules() -> Path:
    """The folder whose node_modules hold mermaid and jsdom from npm (.ci/run installs them)."""
    folder = Path(
        os.environ.get("QFLOW_TEST_MERMAID") or Path.home() / ".cache" / "qflow-ci" / "mermaid"
    )
    for package in ("mermaid", "jsdom"):
        if not (folder / "node_modules" / package / "package.json").is_file():
            pytest.fail(
                f"{package} from npm is missing in {folder}: npm install --prefix {folder} "
                "mermaid@11 jsdom@29 (.ci/run does)"
            )
    return folder


def mermaid_parse(diagrams: list[str]) -> list[dict[str, Any]]:
    """Each diagram as Mermaid's own parser (node, the npm package) reads it."""
    done = subprocess.run(
        ["node", str(MERMAID_PARSE), str(mermaid_modules())],
        input=json.dumps(diagrams),
        capture_output=True,
        text=True,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def github_html(text: str) -> tuple[str, list[Any]]:
    """``text`` rendered as GitHub does it (CommonMark with GFM tables), and its tokens."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    return md.render(text), md.parse(text)


def mermaid_blocks(text: str) -> list[str]:
    """The contents of the ```mermaid fences GitHub would draw as diagrams."""
    _, tokens = github_html(text)
    return [t.content for t in tokens if t.type == "fence" and t.info.strip() == "mermaid"]


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
    # Every tracker's experiment and run ids (QFlow's own store here), and the runtime.
    assert f"| QFlow (filetracker) | train | {head} | – |" in text
    assert f"| host | {socket.gethostname()} |" in text
    assert f"| python | {platform.python_version()} ({platform.python_implementation()}) |" in text
    assert "| executor | local |" in text
    assert "| qflow | " in text and "| packages | " in text
    # Metrics table with the baseline's values and deltas.
    assert "| metric | value | min | max | points | trend | baseline | Δ | Δ % |" in text
    loss_row = next(line for line in text.splitlines() if line.startswith("| loss |"))
    assert "| 5 |" in loss_row and "█" in loss_row and "▁" in loss_row
    # Metric history: a Mermaid chart in the text (a PR comment shows no relative images),
    # and a PNG per metric with a history in plots/ for the workflow artifact.
    png = out_dir / "plots" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![" not in text and "plots/" not in text
    assert mermaid_blocks(text) == [
        "xychart-beta\n"
        '  title "loss"\n'
        '  x-axis "step" [0, 1, 2, 3, 4]\n'
        '  y-axis "loss"\n'
        "  line [0.85, 0.7225, 0.614125, 0.522006, 0.443705]\n"
    ]
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
    text = render_markdown(data)
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
    text = path.read_text()
    assert f"| QFlow (filetracker) | train | {run.id} | – |" in text
    assert "| mlflow | – | abc123 | – |" in text


def test_links_to_the_server_the_trackers_and_the_ci_run(
    ci_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tags = [
        "mlflow.experiment_id=3", "mlflow.run_id=abc", "mlflow.tracking_uri=http://u:pw@ml:5000",
        "wandb.entity=team", "wandb.project=churn", "wandb.run_id=r1",
    ]  # fmt: skip
    assert cli(capsys, "run", "train", *[a for t in tags for a in ("--tag", t)])[0] == 0
    run_id = latest(capsys)
    monkeypatch.setenv("QFLOW_SERVER_URL", "https://admin:secret@qflow.example:8443/")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "org/repo")
    monkeypatch.setenv("GITHUB_RUN_ID", "991")
    code, _, err = cli(capsys, "report", run_id, "-o", "r")
    assert code == 0, err
    text = (ci_project / "r" / "report.md").read_text()
    links = next(line for line in text.splitlines() if line.startswith("[QFlow server]"))
    assert links == (
        f"[QFlow server](https://qflow.example:8443/runs/{run_id})"
        " · [MLflow run](http://ml:5000/#/experiments/3/runs/abc)"
        " · [W&amp;B run](https://wandb.ai/team/churn/runs/r1)"
        " · [GitHub Actions run](https://github.com/org/repo/actions/runs/991)"
    )
    assert "secret" not in text and "pw@" not in text
    assert "| mlflow | 3 | abc | tracking_uri http://***@ml:5000 |" in text
    assert "| wandb | churn | r1 | entity team |" in text
    # --server-url wins; a URL that is not http(s) gives no link.
    code, _, err = cli(capsys, "report", run_id, "-o", "r", "--server-url", "javascript:x()")
    assert code == 0, err
    assert "javascript" not in (ci_project / "r" / "report.md").read_text()


def test_sparkline() -> None:
    assert sparkline([1.0]) == ""
    assert sparkline([0.0, 1.0, 0.5]) == "▁█▄"
    assert sparkline([1.0, float("nan"), 2.0]) == "▁ █"


def test_pr_comment_renders_on_github(
    two_runs: tuple[str, str],
    ci_project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Markdown a PR comment gets: tables, Mermaid charts Mermaid's parser accepts, no
    images or links to files, and no HTML GitHub would strip except <details>/<summary>."""
    monkeypatch.setenv("QFLOW_BASE_BRANCH", "main")
    code, _, err = cli(capsys, "report", two_runs[1], "--compare-to", "base", "-o", "r")
    assert code == 0, err
    text = (ci_project / "r" / "report.md").read_text()
    page, tokens = github_html(text)
    assert page.count("<table>") == 5  # summary, trackers, runtime, metrics, what changed
    assert "<img" not in page
    hrefs = [t.attrGet("href") for t in tokens if t.children for t in t.children if t.attrs]
    assert all(str(h).startswith("http") for h in hrefs), hrefs
    raw = {t.content.strip() for t in tokens if t.type == "html_block"}
    raw |= {c.content for t in tokens for c in t.children or [] if c.type == "html_inline"}
    assert {tag.split(">")[0] + ">" for tag in raw} <= {"<details>", "</details>", "<summary>"}
    blocks = mermaid_blocks(text)
    assert len(blocks) == 1 and '"loss"' in blocks[0]
    assert mermaid_parse(blocks) == [{"ok": True, "type": "xychart"}]


def test_charts_of_any_history_parse_as_mermaid() -> None:
    """Long, tiny, huge, negative and odd-named histories all give charts Mermaid reads."""
    histories = {
        "train_loss": [(float(i), 2.0 / (i + 1)) for i in range(500)],
        "tiny": [(0.0, 1.5e-9), (1.0, -3e-7), (2.0, 0.0)],
        "huge": [(0.0, 3e21), (10.0, -1.25e18)],
        'odd "name" [x] ```': [(0.5, 1.0), (1.5, 2.0)],
    }
    charts = [mermaid_chart(key, points) for key, points in histories.items()]
    first = charts[0].splitlines()
    assert first[1] == '  title "train_loss"'
    values = first[4].removeprefix("  line [").removesuffix("]").split(", ")
    assert len(values) == MAX_CHART_POINTS and values[0] == "2" and values[-1] == "0.004"
    numbers = [line for chart in charts for line in chart.splitlines() if "[" in line]
    assert not [line for line in numbers if "e" in line.split("[")[1]]
    assert "-0.0000003" in charts[1] and "3000000000000000000000" in charts[2]
    assert mermaid_parse(charts) == [{"ok": True, "type": "xychart"}] * 4
    # The parser is strict: an exponent (what a plain float format gives) is refused.
    (refused,) = mermaid_parse([charts[1].replace("-0.0000003", "-3e-07")])
    assert refused["ok"] is False and "Parse error" in refused["error"]


def test_a_huge_report_still_fits_in_a_comment(two_runs: tuple[str, str]) -> None:
    base, head = two_runs
    client = Client()
    data = collect(client.metadata, client.metadata.get_run(head), compare_to=base)
    assert data.diff is not None and data.diff["code"]
    long_diff = "\n".join(f"+    line_{i} = {i}" for i in range(150))
    code = {f"step_{i}": {"diff": long_diff} for i in range(60)}
    big = dataclasses.replace(data, diff={**data.diff, "code": code})
    text = render_markdown(big)
    assert len(text) <= MAX_COMMENT
    assert "**Code** (60 steps changed)" in text and "code diffs are left out" in text
    assert "line_1 = 1" not in text
    assert "| config | epochs | 4 | 5 |" in text and mermaid_blocks(text)
    # Without the cut the same report is far longer than GitHub accepts.
    assert render_markdown(data).count("<details>") == 1
    config = {f"key_{i}": (i, "x" * 150) for i in range(2000)}
    huge = dataclasses.replace(big, diff={**data.diff, "code": code, "config": config})
    text = render_markdown(huge)
    assert len(text) <= MAX_COMMENT and text.endswith("longer than a PR comment can be._\n")


def test_runtime_rows_name_the_executor_and_mask_credentials(
    ci_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "run", "train")[0] == 0
    run = Client().metadata.get_run(latest(capsys))
    on_ray = dataclasses.replace(
        run,
        config={"executor": {"name": "ray", "address": "ray://admin:pw@head:10001", "cpus": 4}},
        meta={**run.meta, "executor": "ray"},
        command="qflow run train --store postgresql://qflow:hunter2@db/qflow",
    )
    rows = dict(runtime_rows(on_ray))
    assert rows["executor"] == "ray (address=ray://***@head:10001, cpus=4)"
    assert rows["command"] == "qflow run train --store postgresql://***@db/qflow"
    assert rows["host"] == socket.gethostname() and rows["python"].startswith(
        platform.python_version()
    )
