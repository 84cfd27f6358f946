"""A mapped step through the CLI: the error names its first failing item and that item's
input, and `qflow logs RUN STEP` shows every item's output, logs and traceback, with how to
pick one (`STEP[1]`), on the local and parallel executors."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qflow.cli.app import run_cli

FLOWS = """
import logging
import time

import qflow as qf

logger = logging.getLogger(__name__)


@qf.step
def songs(n: int) -> list:
    return [f"song-{i}" for i in range(n)]


@qf.step
def compute_statistics(song: str) -> int:
    index = int(song.rsplit("-", 1)[1])
    print(f"stats of {song}")
    logger.info("computing %s", song)
    if index == 1:
        time.sleep(0.3)  # item 3 fails first in time on the parallel executor
    if index in (1, 3):
        raise ValueError(f"no genre for {song}")
    return index


@qf.workflow
def statistics(n: int = 5):
    return compute_statistics.map(songs(n))
"""


@pytest.fixture
def flows(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (project / "pyproject.toml").write_text('[tool.qflow]\nworkflow-modules = ["mapflows"]\n')
    (project / "mapflows.py").write_text(FLOWS)
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.syspath_prepend(str(project))
    yield project
    sys.modules.pop("mapflows", None)


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_mapped_step_error_and_logs_show_every_item(
    flows: Path, executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "statistics", "--executor", executor, "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "step 1_compute_statistics raised item 1 ('song-1') failed" in err
    assert "ValueError: no genre for song-1" in err
    run_id = re.search(r"Run (\w+) of 'statistics' failed", err).group(1)  # type: ignore[union-attr]

    assert run_cli(["logs", run_id, "compute_statistics"]) == 0  # the step's name works too
    out = capsys.readouterr().out
    assert "error: item 1 ('song-1') failed: ValueError: no genre for song-1" in out
    for index in (0, 1):
        assert f"── 1_compute_statistics[{index}]" in out
        assert f"stats of song-{index}" in out
        assert f"INFO mapflows: computing song-{index}" in out
    first_failure = out.index("── 1_compute_statistics[1] failed")
    assert out.index("ValueError: no genre for song-1", first_failure) > first_failure
    assert f"Hint: qflow logs {run_id} '1_compute_statistics[1]' shows one item." in out

    assert run_cli(["logs", run_id, "1_compute_statistics[1]"]) == 0
    one = capsys.readouterr().out
    assert "stats of song-1" in one and "ValueError: no genre for song-1" in one
    assert "song-0" not in one and "Hint:" not in one
