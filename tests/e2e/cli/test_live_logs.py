"""What a running step has printed so far reaches the store while it runs: `qflow logs RUN
STEP`, from another process, shows it before the step ends, on the local and parallel
executors."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import QFLOW, TIMEOUT, environment, spawn

pytestmark = pytest.mark.integration


def _qflow(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [str(QFLOW), *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return done.stdout


def _until(what: str, check: Callable[[], tuple[bool, str]]) -> str:
    """Look with ``check`` until it finds what it looks for and return the text it saw;
    fail at the deadline with ``what`` and the last text seen."""
    deadline = time.monotonic() + TIMEOUT
    seen = ""
    while time.monotonic() < deadline:
        ok, seen = check()
        if ok:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen before the deadline; last seen:\n{seen}")


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_qflow_logs_shows_what_a_running_step_printed(talky: Path, executor: str) -> None:
    hold = talky / "hold"
    hold.touch()  # wait_for_release waits while this file exists
    session = spawn(["run", "interrupted", "--executor", executor], talky)

    def running_run() -> tuple[bool, str]:
        text = _qflow(["runs", "--status", "running", "--json"], talky)
        return bool(json.loads(text)), text

    runs = json.loads(_until("a running run", running_run))
    run_id = runs[0]["id"]

    def live_logs() -> tuple[bool, str]:
        text = _qflow(["logs", run_id, "wait_for_release"], talky)
        return "second step is waiting" in text, text

    shown = _until("the waiting step's first line in qflow logs", live_logs)
    assert "running" in shown and "second step released" not in shown

    hold.unlink()
    assert session.finish() == 0, session.screen
    final = _qflow(["logs", run_id, "wait_for_release"], talky)
    assert "second step is waiting\nsecond step released" in final
