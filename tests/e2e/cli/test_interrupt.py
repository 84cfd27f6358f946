"""Ctrl-C in a real terminal ends a run as ``killed``, and ``qflow resume`` finishes it."""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

from tests.e2e.cli.terminal import TRACEBACK, recorded, spawn

pytestmark = pytest.mark.integration

STOPPED_WITHIN = 15.0
"""Seconds the run may take to stop after Ctrl-C (the waiting step would take 30)."""


@pytest.mark.parametrize(
    "executor",
    [
        pytest.param([], id="local"),
        pytest.param(["--executor", "parallel", "--workers", "2"], id="parallel"),
    ],
)
def test_ctrl_c_ends_the_run_as_killed_and_resume_finishes_it(
    talky: Path, executor: list[str]
) -> None:
    (talky / "hold").touch()
    session = spawn(["run", "interrupted", *executor], talky)
    session.expect("second step is waiting")
    descendants = psutil.Process(session.child.pid).children(recursive=True)
    if executor:
        assert descendants, "the parallel executor started no worker process"

    session.child.send(b"\x03")
    status = session.finish(timeout=STOPPED_WITHIN)

    screen = session.screen
    assert status == 130, screen
    assert TRACEBACK not in screen
    assert "second step released" not in screen
    raw = session.log.getvalue()  # the terminal is left usable: the cursor rich hid is back
    assert raw.rfind(b"\x1b[?25h") > raw.rfind(b"\x1b[?25l"), screen
    hint = re.search(r"qflow resume (\w+)", screen)
    assert hint, f"no resume hint; screen:\n{screen}"
    run_id = hint.group(1)
    status, steps = recorded(run_id, talky)
    assert status == "killed", steps
    assert steps.get("0_first") == "succeeded", steps
    assert "running" not in steps.values(), steps
    # Workers die with their coordinator: wait_procs waits for them, it never sleeps blindly.
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"left running after the run ended: {alive}"

    (talky / "hold").unlink()
    resumed = spawn(["resume", run_id, *executor], talky)
    assert resumed.finish() == 0, resumed.screen
    found = re.search(rf"Run (\w+) succeeded \(resumed {run_id}\)", resumed.screen)
    assert found, resumed.screen
    assert "second step released" in resumed.screen
    assert "first step ran" not in resumed.screen
    assert (talky / "first.log").read_text(encoding="utf-8") == "ran\n"
    status, again = recorded(found.group(1), talky)
    assert status == "succeeded", again
    assert again.get("1_wait_for_release") == "succeeded", again
    assert again.get("0_first") in {"cached", "reused"}, again


def test_a_second_ctrl_c_exits_at_once_and_leaves_no_worker(talky: Path) -> None:
    (talky / "hold").touch()
    session = spawn(["run", "interrupted", "--executor", "parallel", "--workers", "2"], talky)
    session.expect("second step is waiting")
    shown = re.search(r"interrupted (\w{26})", session.screen)  # the workflow bar
    assert shown, session.screen
    descendants = psutil.Process(session.child.pid).children(recursive=True)
    assert descendants, "the parallel executor started no worker process"

    # The second Ctrl-C lands while the run stops (hard exit) or just after: either way
    # the shell sees 130 at once and nothing is left running.
    session.child.send(b"\x03")
    session.expect(r"\^C")
    session.child.send(b"\x03")
    status = session.finish(timeout=STOPPED_WITHIN)

    screen = session.screen
    assert status == 130, screen
    assert TRACEBACK not in screen
    run_id = shown.group(1)
    assert f"qflow resume {run_id}" in screen, screen  # on either path, the way to continue
    raw = session.log.getvalue()
    if "stopped at once" in screen:  # the hard exit: the hidden cursor is shown again
        assert raw.rfind(b"\x1b[?25h") > raw.rfind(b"\x1b[?25l"), raw[-300:]
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"left running after the run ended: {alive}"
    status_text, steps = recorded(run_id, talky)
    assert status_text in {"killed", "crashed"}, (status_text, steps)
    assert steps.get("0_first") == "succeeded", steps
    assert "running" not in steps.values(), steps

    (talky / "hold").unlink()
    resumed = spawn(["resume", run_id], talky)
    assert resumed.finish() == 0, resumed.screen
    assert "second step released" in resumed.screen
    assert (talky / "first.log").read_text(encoding="utf-8") == "ran\n"
