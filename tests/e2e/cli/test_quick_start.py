"""The README's quick start, in a terminal: ``scripts/example.sh`` after its install lines.

The script's own ``qflow`` lines are read from it and run as written, in a 120x40 terminal,
on a copy of ``examples/classification`` (the repository is never written). Creating
``.venv`` and installing is left out: the tests already run in that environment.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import QFLOW, TRACEBACK, in_terminal

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "example.sh"
EXAMPLE = "examples/classification"
STEPS = ("0_load", "1_split", "2_FitLogisticRegression", "3_predict", "4_evaluate")


def _qflow_lines(project: Path) -> list[list[str]]:
    """The script's ``.venv/bin/qflow …`` commands, on ``project`` instead of the example."""
    commands = []
    for line in SCRIPT.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == ".venv/bin/qflow":
            args = [str(project) if w == EXAMPLE else w for w in words[1:] if w != "$@"]
            assert str(project) in args, f"{line!r} does not name {EXAMPLE}"
            commands.append(args)
    return commands


def test_the_quick_start_example_runs_in_a_terminal(tmp_path: Path) -> None:
    project = tmp_path / "classification"
    shutil.copytree(REPO / EXAMPLE, project, ignore=shutil.ignore_patterns(".qflow", "__pycache__"))
    commands = _qflow_lines(project)
    assert [args[0] for args in commands] == ["run", "runs"], commands
    assert QFLOW.is_file()

    screens = []
    for _ in range(2):  # "Run it twice: the second run is served from the cache."
        for args in commands:
            status, screen = in_terminal(args, tmp_path)
            assert status == 0, screen
            assert TRACEBACK not in screen
            screens.append(screen)

    first, listed, second, listed_again = screens
    run_id = re.search(r"Run (\w+) succeeded", first)
    assert run_id, first
    assert re.search(rf"logistic_regression {run_id.group(1)}\s+━+\s+5/5\s+\d+:\d\d:\d\d", first)
    assert "loaded breast_cancer: 569 rows, 30 features" in first
    for step in STEPS:
        assert re.search(rf"{step} succeeded\s+━+\s+1/1\s+\d+:\d\d:\d\d", first), first
        assert re.search(rf"{step} cached\s+━+\s+1/1\s+\d+:\d\d:\d\d", second), second
    assert re.search(rf"{run_id.group(1)}\s+logistic_regression\s+succeeded", listed), listed
    assert len(re.findall(r"logistic_regression\s+succeeded", listed_again)) == 2, listed_again
    assert (project / ".qflow").is_dir()  # the copy was used, not the repository
