"""What a running step has printed so far reaches the store while it runs: `qflow logs RUN
STEP`, from another process, shows it before the step ends, on the local and parallel
executors and for a script run with `qflow exec`."""

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


def _running_run(project: Path) -> str:
    def running_run() -> tuple[bool, str]:
        text = _qflow(["runs", "--status", "running", "--json"], project)
        return bool(json.loads(text)), text

    return str(json.loads(_until("a running run", running_run))[0]["id"])


def _shown_while_running(project: Path, run_id: str, step: str, line: str) -> str:
    def live_logs() -> tuple[bool, str]:
        text = _qflow(["logs", run_id, step], project)
        return line in text, text

    return _until(f"{line!r} in qflow logs {run_id} {step}", live_logs)


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_qflow_logs_shows_what_a_running_step_printed(talky: Path, executor: str) -> None:
    hold = talky / "hold"
    hold.touch()  # wait_for_release waits while this file exists
    session = spawn(["run", "interrupted", "--executor", executor], talky)
    run_id = _running_run(talky)

    shown = _shown_while_running(talky, run_id, "wait_for_release", "second step is waiting")
    assert "running" in shown and "second step released" not in shown

    hold.unlink()
    assert session.finish() == 0, session.screen
    final = _qflow(["logs", run_id, "wait_for_release"], talky)
    assert "second step is waiting\nsecond step released" in final


SCRIPT = """\
import time
from pathlib import Path

print("script started")
deadline = time.monotonic() + 60
while Path("hold").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("script released")
"""


def test_qflow_logs_shows_what_a_running_script_printed(talky: Path) -> None:
    """``qflow exec script.py``: the script's output so far, as for a step."""
    (talky / "script.py").write_text(SCRIPT, encoding="utf-8")
    hold = talky / "hold"
    hold.touch()
    session = spawn(["exec", "script.py"], talky)
    run_id = _running_run(talky)

    shown = _shown_while_running(talky, run_id, "0_main", "script started")
    assert "script released" not in shown

    hold.unlink()
    assert session.finish() == 0, session.screen
    assert "script started\nscript released" in _qflow(["logs", run_id, "0_main"], talky)
