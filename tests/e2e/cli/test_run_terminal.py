"""``qflow run`` in a real terminal: it ends, shows the bars, shows what steps print."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import QFLOW, TIMEOUT, TRACEBACK, environment, in_terminal

pytestmark = pytest.mark.integration

ELAPSED = r"\d+:\d\d:\d\d"


def _run_id(screen: str) -> str:
    found = re.search(r"Run (\w+) succeeded", screen)
    assert found, f"no 'Run … succeeded' line; screen:\n{screen}"
    return found.group(1)


def test_run_in_a_terminal_shows_bars_and_output_and_ends(talky: Path) -> None:
    status, screen = in_terminal(["run", "chatty"], talky)

    assert status == 0, screen
    assert TRACEBACK not in screen
    run_id = _run_id(screen)
    # The workflow bar (name, run id, all steps done, elapsed time) and one line per step.
    assert re.search(rf"chatty {run_id}\s+━+\s+2/2\s+{ELAPSED}", screen), screen
    for step in ("0_load", "1_train"):
        assert re.search(rf"{step} succeeded\s+━+\s+1/1\s+{ELAPSED}", screen), screen
    # What the steps printed reaches the terminal, stdout and stderr alike.
    for text in ("hello from load with n=3", "load warning on stderr", "train epoch 2"):
        assert text in screen

    status, logs = in_terminal(["logs", run_id, "0_load"], talky)
    assert status == 0, logs
    assert "hello from load with n=3" in logs
    assert "load warning on stderr" in logs
    assert "train epoch" not in logs

    status, again = in_terminal(["run", "chatty"], talky)
    assert status == 0, again
    assert _run_id(again) != run_id
    for step in ("0_load", "1_train"):
        assert re.search(rf"{step} cached\s+━+\s+1/1\s+{ELAPSED}", again), again


def test_run_to_a_pipe_prints_plain_lines(talky: Path) -> None:
    done = subprocess.run(
        [str(QFLOW), "run", "chatty"],
        cwd=talky,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert re.search(r"^\[qflow +\d+\.\d\ds\] run \w+ of chatty: 2 steps$", done.stderr, re.M)
    for step in ("0_load", "1_train"):
        line = rf"^\[qflow +\d+\.\d\ds\] {step} succeeded in \d+\.\d+s$"
        assert re.search(line, done.stderr, re.M), done.stderr
    assert re.search(r"^\[qflow +\d+\.\d\ds\] run \w+ succeeded$", done.stderr, re.M)
    assert "hello from load with n=3" in done.stdout
    assert "load warning on stderr" in done.stderr
    # No live display and no colour codes when nobody is watching.
    assert "\x1b[" not in done.stdout + done.stderr
    assert "━" not in done.stdout + done.stderr
