"""``qflow … | head -1``: a reader that goes away never fails a step, a run or a command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import QFLOW, TIMEOUT, environment, recorded, stored_run

pytestmark = pytest.mark.integration


def _head(args: list[str], cwd: Path) -> tuple[str, int, str]:
    """``qflow ARGS | head -1`` in bash (no pipefail): head's output, qflow's exit status
    and qflow's stderr."""
    script = '"$0" "$@" 2>qflow.err | head -1; echo "${PIPESTATUS[0]}" >qflow.status'
    done = subprocess.run(
        ["bash", "-c", script, str(QFLOW), *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status = int((cwd / "qflow.status").read_text(encoding="utf-8"))
    stderr = (cwd / "qflow.err").read_text(encoding="utf-8")
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert "Exception ignored" not in stderr
    return done.stdout, status, stderr


def _run_id(stderr: str, workflow: str) -> str:
    started = re.search(rf"run (\w+) of {workflow}", stderr)
    assert started, stderr
    return started.group(1)


def test_a_pipe_closed_early_does_not_fail_the_run(talky: Path) -> None:
    shown, status, stderr = _head(["run", "noisy"], talky)

    assert shown == "line 0 of a step that talks a lot\n"
    assert status == 0, stderr
    run_id = _run_id(stderr, "noisy")
    assert recorded(run_id, talky) == (
        "succeeded",
        {"0_chatter": "succeeded", "1_more_chatter": "succeeded"},
    )
    # The run's own logs keep everything the closed pipe did not show.
    with stored_run(run_id, talky) as run:
        assert "line 19999 of a step" in run.step("0_chatter").record.stdout
        assert "more 19999" in run.step("1_more_chatter").record.stdout
        assert "err 19999" in run.step("1_more_chatter").record.stderr

    # Read through `| head -1`, the 40,000 lines of that log end `qflow logs` quietly too.
    shown, status, stderr = _head(["logs", run_id, "1_more_chatter"], talky)
    assert shown.startswith("── 1_more_chatter succeeded")
    assert status == 0, stderr


def test_a_failed_run_behind_a_closed_pipe_still_exits_non_zero(talky: Path) -> None:
    shown, status, stderr = _head(["run", "noisy_failure"], talky)

    assert shown == "line 0 of a step that talks a lot\n"
    assert status == 1, stderr
    assert "gave up after 20000 lines" in stderr
    run_id = _run_id(stderr, "noisy_failure")
    assert recorded(run_id, talky) == ("failed", {"0_chatter": "succeeded", "1_give_up": "failed"})
