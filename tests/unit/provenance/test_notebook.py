from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import ConfigError, StepFailedError
from qflow.provenance.notebook import convert, inject_parameters, notebook_step
from qflow.store import open_stores


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


def test_convert_takes_path_parameters_as_data_files_whose_hash_is_recorded(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    (project / "rows.csv").write_text("a\n1\n2\n")
    notebook = _notebook(
        tmp_path / "count.ipynb",
        [
            ('rows_file = "rows.csv"\nout_path = "summary.csv"\nlabel = "v1.5"', ["parameters"]),
            ("text = open(rows_file).read()\nn = len(text.splitlines()) - 1", ["step:count"]),
            ("summary = f'{label}: {n} rows'", ["step:summarize"]),
        ],
    )
    target = project / "count_steps.py"
    convert(notebook, target)
    text = target.read_text()
    assert "def count(rows_file: qf.DataFile):" in text
    assert "out_path: qf.DataFile" not in text and "label: qf.DataFile" not in text
    assert "def count_workflow(rows_file=" in text

    spec = importlib.util.spec_from_file_location("count_steps", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = qf.run(module.count_workflow, project_dir=project)  # type: ignore[attr-defined]
    assert first.status == "succeeded" and first.step("summarize").load() == "v1.5: 2 rows"
    metadata, _ = open_stores(project)
    (record,) = [f for f in metadata.data_files(first.id) if f.name == "rows_file"]
    assert record.path == str(project / "rows.csv") and record.size == 6

    (project / "rows.csv").write_text("a\n1\n2\n3\n")  # new content: the step runs again
    second = qf.run(module.count_workflow, project_dir=project)  # type: ignore[attr-defined]
    assert second.step("count").status == "succeeded"
    assert second.step("summarize").load() == "v1.5: 3 rows"


@pytest.mark.integration
def test_log_calls_inside_a_notebook_step_are_recorded_on_the_step(
    tmp_path: Path, project: Path
) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = _notebook(
        tmp_path / "train.ipynb",
        [
            ("epochs = 2", ["parameters"]),
            (
                "import qflow as qf\nfrom qflow import log_metric\n"
                "for epoch in range(epochs):\n"
                "    log_metric('loss', 1.0 / (epoch + 1), step=epoch)\n"
                "qf.log_metric('odd', float('nan'))\n"
                "qf.log_params({'optimizer': 'sgd', 'layers': [2, 3]})\n"
                "qf.set_tag('stage', 'notebook')",
                [],
            ),
            (
                "from pathlib import Path\nPath('notes.txt').write_text('hello')\n"
                "qf.log_artifact('notes.txt', name='notes.txt')",
                [],
            ),
        ],
    )
    train = notebook_step(notebook)

    @qf.workflow
    def training(epochs: int = 2) -> object:
        return train(epochs=epochs)

    run = qf.run(training, {"epochs": 3}, project_dir=project)
    assert run.status == "succeeded"
    client = qf.Client(project)
    view = client.run(run.id)
    losses = [(m.step, m.value) for m in view.metric_history("loss")]
    assert losses == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert math.isnan(view.metrics_summary["odd"])
    assert view.params["optimizer"] == "sgd" and view.params["layers"] == [2, 3]
    assert view.tags["stage"] == "notebook"
    names = {a.name for a in view.artifacts}
    assert {"notes.txt", "train.ipynb"} <= names
    executed = run.step("train").load()
    assert not any("qflow-forward" in c["metadata"].get("tags", []) for c in executed["cells"])


@pytest.mark.integration
def test_metrics_logged_before_a_notebook_fails_are_kept(tmp_path: Path, project: Path) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = _notebook(
        tmp_path / "fails.ipynb",
        [
            ("n = 1", ["parameters"]),
            ("import qflow as qf\nqf.log_metric('before', 7.0)", []),
            ("raise RuntimeError('boom in the notebook')", []),
        ],
    )
    failing = notebook_step(notebook)

    @qf.workflow
    def broken(n: int = 1) -> object:
        return failing(n=n)

    with pytest.raises(StepFailedError, match="boom in the notebook"):
        qf.run(broken, project_dir=project)
    (run,) = qf.Client(project).runs()
    assert run.status == "failed" and run.metrics_summary == {"before": 7.0}
