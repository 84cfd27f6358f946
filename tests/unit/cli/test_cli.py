from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qflow.cli.app import run_cli

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def cli_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose pyproject declares the fixture workflows, with a config file."""
    (project / "pyproject.toml").write_text(
        '[project]\nname = "cliproj"\n'
        '[tool.qflow]\nworkflow-modules = ["tests.fixtures.workflows"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "diamond.yaml").write_text("n: 3\nfactor: 0.5\n")
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(FIXTURES.parents[1]))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return project


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _last_run_id(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _ = _run(capsys, "runs", "--json")
    assert code == 0
    return str(json.loads(out)[0]["id"])


def test_run_show_runs_and_logs(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "run", "linear", "n=3")
    assert code == 0, err
    assert "succeeded" in out
    run_id = _last_run_id(capsys)
    assert run_id in out

    code, out, _ = _run(capsys, "show", run_id[:12])
    assert code == 0
    assert "0_load" in out and "2_total" in out and "total" in out

    code, out, _ = _run(capsys, "show", run_id, "--json")
    data = json.loads(out)
    assert data["config"] == {"n": 3}
    assert [s["name"] for s in data["steps"]] == ["0_load", "1_double", "2_total"]
    assert data["metrics"] == {"total": 6.0}

    code, out, _ = _run(capsys, "logs", run_id, "0_load")
    assert code == 0
    assert "loading 3" in out

    code, out, _ = _run(capsys, "runs")
    assert code == 0 and run_id in out and "linear" in out


def test_runs_filters(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "run", "linear", "n=2", "--tag", "team=a")[0] == 0
    assert _run(capsys, "run", "diamond")[0] == 0
    assert _run(capsys, "run", "failing")[0] == 1

    def ids(*args: str) -> list[str]:
        code, out, _ = _run(capsys, "runs", "--json", *args)
        assert code == 0
        return [r["workflow"] for r in json.loads(out)]

    assert ids() == ["failing", "diamond", "linear"]
    assert ids("--workflow", "diamond") == ["diamond"]
    assert ids("--status", "failed") == ["failing"]
    assert ids("--tag", "team=a") == ["linear"]


def test_config_file_and_overrides(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "run", "diamond", "factor=2.0")[0] == 0
    _, out, _ = _run(capsys, "show", _last_run_id(capsys), "--json")
    assert json.loads(out)["config"] == {"n": 3, "factor": 2.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "diamond", "nope=1"], "Unknown config key 'nope'"),
        (["run", "diamond", "factor"], "Override 'factor' is malformed"),
        (["run", "linear", "nn=3"], "no parameter 'nn'"),
        (["run", "lineer"], "No workflow named 'lineer'"),
        (["show", "zzzz"], "No run with id 'zzzz'"),
        (["logs", "zzzz"], "No run with id 'zzzz'"),
        (["graph", "linear", "--format", "png"], "Unknown graph format 'png'"),
    ],
    ids=[
        "unknown-key",
        "malformed",
        "bad-param",
        "unknown-workflow",
        "unknown-run",
        "logs-unknown-run",
        "bad-format",
    ],
)
def test_user_errors_are_one_line_without_traceback(
    cli_project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err + out
    assert err.startswith("Error: ")


def test_unknown_workflow_suggests_close_match(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, err = _run(capsys, "run", "lineer")
    assert "Did you mean: linear?" in err


def test_unknown_run_suggests_close_ids(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "run", "linear")
    run_id = _last_run_id(capsys)
    typo = run_id[:-1] + ("0" if run_id[-1] != "0" else "1")
    _, _, err = _run(capsys, "show", typo)
    assert f"Did you mean: {run_id}" in err


def test_malformed_yaml_names_file_and_line(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cli_project / "conf" / "diamond.yaml").write_text("n: 3\nfactor: [0.5\nother: 1\n")
    code, _, err = _run(capsys, "run", "diamond")
    assert code == 1
    assert "diamond.yaml:3" in err and "not valid YAML" in err
    assert _run(capsys, "runs", "--json")[1].strip() == "[]"


def test_verbose_shows_the_traceback(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--verbose", "show", "zzzz")
    assert code == 1
    assert "Traceback" in err


def test_usage_error_exit_code(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "runs", "--limit", "many")
    assert code == 2
    assert "Invalid value for '--limit'" in err


def test_graph_prints_mermaid_and_dot(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "graph", "diamond")
    assert code == 0
    assert out.startswith("flowchart TD")
    assert "n_0_load -->|xs| n_1_double" in out
    code, out, _ = _run(capsys, "graph", "diamond", "--format", "dot")
    assert '"0_load" -> "2_Scale" [label="xs"];' in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is installed by .ci/run")
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_graph_writes_a_picture(
    cli_project: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    target = cli_project / f"graph.{suffix}"
    code, _, err = _run(capsys, "graph", "diamond", "-o", str(target))
    assert code == 0, err
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in data
    if suffix == "svg":
        assert b"6_combine" in data


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for command in ("run", "runs", "show", "logs", "graph"):
        assert command in out


@pytest.mark.integration
def test_cli_as_a_real_subprocess(cli_project: Path) -> None:
    qflow = [sys.executable, "-m", "qflow"]
    env = {
        "PATH": "/usr/bin:/bin",
        "NO_COLOR": "1",
        "PYTHONPATH": str(FIXTURES.parents[1]),
        "HOME": str(cli_project),
    }
    ok = subprocess.run(
        [*qflow, "run", "linear", "n=5"],
        cwd=cli_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "2_total succeeded" in ok.stderr
    bad = subprocess.run(
        [*qflow, "show", "nope"],
        cwd=cli_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[0] == "Error: No run with id 'nope'."
    assert "Traceback" not in bad.stderr


def test_show_explains_why_each_step_ran(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "run", "diamond")[0] == 0
    assert _run(capsys, "run", "diamond", "factor=3.0")[0] == 0
    run_id = _last_run_id(capsys)
    code, out, _ = _run(capsys, "show", run_id)
    assert code == 0
    assert "param factor: 0.5 → 3.0" in out
    assert "cached from" in out
    _, out, _ = _run(capsys, "show", run_id, "--json")
    reasons = {s["name"]: s["reason"] for s in json.loads(out)["steps"]}
    assert reasons["2_Scale"] == "param factor: 0.5 → 3.0"
