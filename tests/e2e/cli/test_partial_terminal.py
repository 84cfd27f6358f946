"""``qflow run data_science --from RUN`` in a real terminal, as a Kedro user runs one pipeline
on another's saved output: the bars show the taken step as cached, and a bad ``--from`` is one
line with a hint and exit status 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import TRACEBACK, in_terminal, recorded, spawn
from tests.fixtures import spaceflights

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def kedro_project(tmp_path: Path) -> Path:
    folder = tmp_path / "spaceflights"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "spaceflights"\n'
        '[tool.qflow]\nworkflow-modules = ["tests.fixtures.spaceflights"]\n'
    )
    catalog = spaceflights.make_data(folder / "data")
    (folder / "conf").mkdir()
    (folder / "conf" / "data_processing.yaml").write_text(
        "".join(f"{name}: {path}\n" for name, path in catalog.items())
    )
    return folder


def _run(args: list[str], cwd: Path) -> tuple[int, str]:
    session = spawn(args, cwd, PYTHONPATH=str(ROOT))
    status = session.finish()
    return status, session.screen


def test_run_from_an_earlier_run_in_a_terminal(kedro_project: Path) -> None:
    status, screen = _run(["run", "data_processing"], kedro_project)
    assert status == 0, screen
    found = re.search(r"Run (\w+) succeeded", screen)
    assert found, screen
    processing = found.group(1)

    status, screen = _run(["run", "data_science", "--from", processing[:10]], kedro_project)
    assert status == 0, screen
    assert TRACEBACK not in screen
    assert re.search(r"0_model_input_table cached", screen), screen
    assert re.search(r"3_evaluate_model succeeded", screen), screen
    science = re.search(r"Run (\w+) succeeded", screen)
    assert science, screen
    state, steps = recorded(science.group(1), kedro_project)
    assert state == "succeeded"
    assert steps["0_model_input_table"] == "cached"

    status, screen = _run(["run", "data_science", "--from", "01nosuchrun"], kedro_project)
    assert status == 1, screen
    assert TRACEBACK not in screen
    assert "Error: --from: No run with id '01nosuchrun'" in screen
    assert "Hint: qflow runs lists the runs" in screen
    status, listing = in_terminal(["runs"], kedro_project)
    assert status == 0
    assert listing.count("data_science") == 1, listing
