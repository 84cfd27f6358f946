"""``qflow new`` in a terminal: answer the wizard as a user does, then run what it made."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pytest

from tests.e2e.cli.terminal import TRACEBACK, in_terminal, spawn, stored_run, strip_ansi

pytestmark = pytest.mark.integration

PROMPT = rb"([^\r\n]*)\[([^\]\r\n]*)\]: "
"""A question with its default: ``Question [default]: ``."""

NAME = "demo_flow"


def _answer(question: str) -> tuple[str, str]:
    """What a user types, by the question's key words (the wording may change): which
    kind of question it was and the answer; anything else takes its default."""
    words = question.lower()
    if "project" in words and "name" in words:
        return "project", NAME
    if "executor" in words:
        return "executor", "parallel"
    if "worker" in words:
        return "workers", "2"
    if "tracker" in words:
        return "tracker", ""
    return "other", ""


def test_new_project_from_the_wizard_runs_in_a_terminal(tmp_path: Path) -> None:
    session = spawn(["new"], tmp_path)
    asked: list[str] = []
    for _ in range(20):  # a wizard that keeps asking (a rejected answer) fails below
        if session.child.expect([PROMPT, pexpect.EOF]) == 1:
            break
        match = session.child.match
        assert isinstance(match, re.Match)
        kind, answer = _answer(strip_ansi(match.group(1)))
        asked.append(kind)
        session.child.sendline(answer.encode())
    status = session.finish()

    screen = session.screen
    assert status == 0, screen
    assert TRACEBACK not in screen
    assert {"project", "tracker", "executor", "workers"} <= set(asked), screen
    assert "not one of" not in screen
    # Long paths wrap at the terminal's 120 columns: match across line ends.
    assert re.search(rf"Created project {NAME} .*executor: parallel", screen, re.S), screen
    project = tmp_path / NAME
    assert (project / "pyproject.toml").is_file()
    workflow = re.search(r"qflow run\s+(\w+)", screen)
    assert workflow, screen

    status, screen = in_terminal(["run", workflow.group(1)], project)

    assert status == 0, screen
    assert TRACEBACK not in screen
    run_id = re.search(r"Run (\w+) succeeded", screen)
    assert run_id, screen
    with stored_run(run_id.group(1), project) as run:
        assert run.status == "succeeded"
        assert run.config["executor"] == {"name": "parallel", "workers": 2}
        statuses = {step.record.name: step.record.status for step in run.steps}
    assert statuses, run
    assert set(statuses.values()) == {"succeeded"}, statuses
    steps = list(statuses)
    total = len(steps)
    bar = rf"{workflow.group(1)} {run_id.group(1)}\s+━+\s+{total}/{total}\s+\d+:\d\d:\d\d"
    assert re.search(bar, screen), screen
    for step in steps:
        assert re.search(rf"{step} succeeded\s+━+\s+1/1\s+\d+:\d\d:\d\d", screen), screen
