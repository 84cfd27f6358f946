from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import ConfigError
from qflow.provenance.notebook import convert, inject_parameters, notebook_step


def _notebook(path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": None,
                        "id": f"c{i}",
                        "metadata": {"tags": tags},
                        "outputs": [],
                        "source": source,
                    }
                    for i, (source, tags) in enumerate(cells)
                ],
            }
        )
    )
    return path


CELLS = [
    ("import math\n%matplotlib inline", []),
    ("n = 4\nscale = 2.0", ["parameters"]),
    ("def square(x):\n    return x * x\n\n\ndef report(v):\n    return f'{v:.2f}'", []),
    ("# load data\nxs = list(range(n))\n!ls", ["step"]),
    ("ys = [square(x) * scale for x in xs]\nbig = max(ys)", ["step:transform"]),
    ("print('exploring', xs)", []),
    ("total = math.fsum(ys) + big", ["step"]),
]


def test_convert_makes_steps_and_a_workflow_that_run(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = _notebook(tmp_path / "Explore Data.ipynb", CELLS)
    target = tmp_path / "src" / "proj" / "steps" / "explore.py"
    result = convert(notebook, target)
    assert result.steps == ["report", "load_data", "transform", "cell_6"]
    assert result.workflow == "explore_data" and result.dropped_cells == [5]
    text = target.read_text()
    assert "%matplotlib" not in text and "!ls" not in text
    assert "def transform(scale, xs):" in text
    assert (
        "@qf.step\ndef report(v):" in text
        and "@qf.step\ndef square" not in text
        and "return ys, big" in text
    )
    assert "def explore_data(n=4, scale=2.0):" in text

    spec = importlib.util.spec_from_file_location("explore_steps", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.transform.fn(1.0, [1, 2]) == ([1, 4], 4)  # type: ignore[attr-defined]
    run = qf.run(module.explore_data, {"n": 3}, project_dir=project)  # type: ignore[attr-defined]
    assert run.status == "succeeded"
    assert run.step("cell_6").load() == 0 + 2 + 8 + 8

    with pytest.raises(ConfigError, match="exists already"):
        convert(notebook, target)
    monkeypatch.setenv("NO_COLOR", "1")
    assert run_cli(["convert", str(notebook), "-o", str(target), "--force"]) == 0


def test_parameters_are_injected_after_the_parameters_cell(tmp_path: Path) -> None:
    notebook = json.loads(_notebook(tmp_path / "n.ipynb", CELLS).read_text())
    injected = inject_parameters(notebook, {"n": 10, "scale": 0.5})
    cell = injected["cells"][2]
    assert cell["metadata"]["tags"] == ["injected-parameters"]
    assert cell["source"] == "# Parameters\nn = 10\nscale = 0.5\n"
    assert len(notebook["cells"]) == len(CELLS)


@pytest.mark.integration
def test_a_notebook_as_a_step_runs_with_injected_parameters(tmp_path: Path, project: Path) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = _notebook(
        tmp_path / "report.ipynb",
        [("n = 2", ["parameters"]), ("result = n * 21\nprint(result)", [])],
    )
    report = notebook_step(notebook)

    @qf.workflow
    def reporting(n: int = 2) -> object:
        return report(n=n)

    run = qf.run(reporting, {"n": 1}, project_dir=project)
    executed = run.step("report").load()
    outputs = executed["cells"][-1]["outputs"]
    assert "".join(outputs[0]["text"]) == "21\n"
    assert executed["cells"][1]["metadata"]["tags"] == ["injected-parameters"]
    assert [a.name for a in run.artifacts] == ["report.ipynb"]
    again = qf.run(reporting, {"n": 1}, project_dir=project)
    assert again.step("report").status == "cached"
