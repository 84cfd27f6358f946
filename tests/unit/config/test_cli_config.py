"""`qflow config show` and `qflow run -m` through the CLI, on a real project folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qflow.cli.app import run_cli

WORKFLOWS = """
from typing import Any

import qflow as qf


@qf.step
def score(C: float, seed: int) -> float:
    if C < 0:
        raise ValueError("C must be positive")
    qf.log_metric("score", C * seed)
    return C * seed


@qf.workflow
def train(cfg: Any) -> Any:
    return score(cfg.model.C, cfg.seed)
"""


@pytest.fixture
def sweep_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "sweepy"\n[tool.qflow]\nworkflow-modules = ["sweepy_flows"]\n'
    )
    (project / "sweepy_flows.py").write_text(WORKFLOWS)
    conf = project / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "train.yaml").write_text("defaults:\n  - _self_\n  - model: small\nseed: 1\n")
    (conf / "model" / "small.yaml").write_text("C: 1.0\n")
    (conf / "model" / "big.yaml").write_text("C: 100.0\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    yield project
    sys.modules.pop("sweepy_flows", None)


def test_config_show_prints_the_resolved_config_and_groups(
    sweep_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["config", "show", "train", "model=big", "seed=3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed: 3\nmodel:\n  C: 100.0\n")
    assert "#   model: big, small" in out
    assert run_cli(["config", "show", "sweepy_flows:train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"seed": 1, "model": {"C": 1.0}}


def test_config_show_bad_override_is_one_line_naming_the_choices(
    sweep_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["config", "show", "train", "model=bigg"]) == 1
    err = capsys.readouterr().err
    assert "Error: Unknown option 'bigg' for config group 'model'" in err
    assert "Valid choices: big, small." in err and "Did you mean: big?" in err
    assert "Traceback" not in err


def test_multirun_runs_every_combination_under_one_sweep(
    sweep_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["run", "train", "-m", "model.C=0.5,2", "seed=1,2,3"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("succeeded") == 6
    assert "model.C=2 seed=3" in out
    assert run_cli(["runs", "--json", "--limit", "10"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 6
    configs = sorted((r["config"]["model"]["C"], r["config"]["seed"]) for r in runs)
    assert configs == [(0.5, 1), (0.5, 2), (0.5, 3), (2.0, 1), (2.0, 2), (2.0, 3)]
    from qflow.store import open_stores

    metadata, _ = open_stores(sweep_project)
    sweeps = {metadata.get_run(r["id"]).sweep_id for r in runs}
    assert len(sweeps) == 1 and None not in sweeps


def test_a_failing_combination_does_not_stop_the_others(
    sweep_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["run", "train", "-m", "model.C=-1,3", "model=small,nope"])
    captured = capsys.readouterr()
    assert code == 1
    lines = [line for line in captured.out.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 4
    assert "failed" in lines[0] and "step 0_score raised" in lines[0]
    assert "failed" in lines[1] and "Unknown option 'nope'" in lines[1]
    assert "succeeded" in lines[2]
    assert "Error: 3 of 4 runs failed in sweep" in captured.err
