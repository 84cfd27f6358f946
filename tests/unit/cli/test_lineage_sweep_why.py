"""`qflow lineage` draws shared upstream steps once, the multirun summary has metric columns,
and the reason a step with a dict parameter re-ran names the changed keys."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qflow.cli.app import run_cli

FLOWS = """
from typing import Any

import qflow as qf


@qf.step
def load(n: int) -> list:
    return list(range(n))


@qf.step
def left(xs: list) -> int:
    return sum(xs)


@qf.step
def right(xs: list) -> int:
    return len(xs)


@qf.step
def join(a: int, b: int) -> int:
    return a * b


@qf.step
def final(c: int, xs: list) -> int:
    return c + len(xs)


@qf.workflow
def diamond(n: int = 4) -> Any:
    xs = load(n)
    return final(join(left(xs), right(xs)), xs)


@qf.step
def score(C: float, options: dict) -> float:
    qf.log_metric("score", C * 2)
    qf.log_metric("loss", 1 / C)
    return C


@qf.workflow
def train(C: float = 1.0, options: dict = {"depth": 2, "solver": {"name": "lbfgs", "tol": 0.1}}):
    return score(C, options)
"""


@pytest.fixture
def flows(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (project / "pyproject.toml").write_text('[tool.qflow]\nworkflow-modules = ["smallflows"]\n')
    (project / "smallflows.py").write_text(FLOWS)
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.syspath_prepend(str(project))
    yield project
    sys.modules.pop("smallflows", None)


def _run_id(out: str) -> str:
    found = re.search(r"Run (\w+) succeeded", out)
    assert found, out
    return found.group(1)


def test_lineage_draws_a_shared_upstream_step_once(
    flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "diamond"]) == 0
    run_id = _run_id(capsys.readouterr().out)
    assert run_cli(["lineage", run_id, "4_final"]) == 0
    out = capsys.readouterr().out
    # 0_load feeds left, right and final: drawn in full once, referred to twice
    assert len(re.findall(r"← step 0_load \(succeeded", out)) == 1
    assert out.count("← step 0_load (shown above)") == 2
    for step in ("1_left", "2_right", "3_join", "4_final"):
        assert len(re.findall(rf"← step {step} \(succeeded", out)) == 1
    assert len(out.splitlines()) < 20


def test_multirun_summary_shows_metric_columns(
    flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "train", "-m", "C=0.5,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "overrides" in line)
    assert header.split() == ["#", "overrides", "run", "status", "score", "loss", "error"]
    rows = [line.split() for line in lines if line.strip().startswith(("1 ", "2 "))]
    assert [(r[1], r[4], r[5]) for r in rows] == [("C=0.5", "1", "2"), ("C=2", "4", "0.5")]
    assert run_cli(["run", "train", "-m", "C=0.5,2", "--metric", "loss"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "overrides" in line)
    assert header.split() == ["#", "overrides", "run", "status", "loss", "error"]


def test_why_a_step_with_a_dict_parameter_ran_names_the_changed_keys(
    flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "train"]) == 0
    capsys.readouterr()
    assert run_cli(["run", "train", "options.solver.tol=0.5", "+options.seed=1"]) == 0
    run_id = _run_id(capsys.readouterr().out)
    assert run_cli(["show", run_id]) == 0
    out = capsys.readouterr().out
    assert "param options: seed added (1), solver.tol 0.1 → 0.5" in out
    reason = out.split("param options:", 1)[1].splitlines()[0]
    assert "lbfgs" not in reason and "depth" not in reason  # unchanged keys are not repeated
