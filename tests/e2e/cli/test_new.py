"""``qflow new`` in a terminal: answer the wizard as a user does, then run what it made; and the
dialogue compared line by line with the white paper's Fig. 1."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pytest

from tests.e2e.cli.terminal import TRACEBACK, in_terminal, spawn, stored_run, strip_ansi

pytestmark = pytest.mark.integration

PROMPT = rb"([^\r\n]*)\[([^\]\r\n]*)\](?:\x1b\[[0-9;]*m)*: "
"""A question with its default: ``Question [default]: `` (the default coloured)."""

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
    assert re.search(rf"Project {NAME} is in .*executor: parallel", screen, re.S), screen
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


FIG_1 = """\
Tracker to configure (mlflow, wandb, filetracker) [filetracker]: mlflow
SUCCESS: Project 'example' is created successfully.
Configuring the component: 'mlflow':
Name of the new configuration [mlflow]:
Address of local or remote tracking server [.qflow/tracker/mlflow]:
Address of local or remote model registry server [null]:
SUCCESS: Component mlflow configured
SUCCESS: Project 'example' is configured.
"""
"""The white paper's Fig. 1: ``qflow new --project-name example``, mlflow, then the defaults."""

ESC = r"\x1b\[[0-9;]*m"


def test_dialogue_is_the_white_papers_figure_1_line_for_line(tmp_path: Path) -> None:
    session = spawn(["new", "--project-name", "example"], tmp_path)
    session.expect(r"\[filetracker\]\S*: ")
    session.child.sendline(b"mlflow")
    for default in (r"\[mlflow\]", r"\[\.qflow/tracker/mlflow\]", r"\[null\]"):
        session.expect(default + r"\S*: ")
        session.child.sendline(b"")
    session.expect(r"\[local\]\S*: ")  # QFlow's own question comes after the paper's lines
    session.child.sendline(b"")
    status = session.finish()

    screen = session.screen
    assert status == 0, screen
    lines = [line.rstrip() for line in screen.splitlines()]
    assert lines[: len(FIG_1.splitlines())] == FIG_1.splitlines(), screen
    assert lines[8:10] == [
        "Executor to configure (local, parallel, ray) [local]:",
        "SUCCESS: Component local configured",
    ], screen
    assert TRACEBACK not in screen
    # Coloured as rich does: SUCCESS in bold green, quoted names as rich highlights strings,
    # the prompt's choices in magenta and its default in cyan (rich's prompt styles).
    raw = session.log.getvalue().decode()
    assert re.search(rf"\x1b\[1;32mSUCCESS:{ESC} Project {ESC}'example'{ESC}", raw), raw
    assert re.search(rf"component: {ESC}'mlflow'{ESC}:", raw), raw
    assert re.search(rf"\({ESC}mlflow, wandb, filetracker{ESC}\) {ESC}\[filetracker\]", raw)
    assert "\x1b[1;35mmlflow, wandb, filetracker" in raw
    assert "\x1b[1;36m[filetracker]" in raw
    project = tmp_path / "example"
    assert (project / "conf/tracker/mlflow.yaml").read_text() == (
        "name: mlflow\ntracking_uri: .qflow/tracker/mlflow\nregistry_uri: null\n"
    )


def test_names_that_shadow_a_dependency_are_refused_in_a_terminal(tmp_path: Path) -> None:
    status, screen = in_terminal(["new", "--project-name", "sklearn", "--yes"], tmp_path)

    assert status == 1, screen
    assert TRACEBACK not in screen
    text = " ".join(screen.split())
    assert "Project name 'sklearn' would shadow the package 'sklearn' of scikit-learn" in text
    assert "Hint: qflow new --project-name sklearn_project" in text
    assert list(tmp_path.iterdir()) == []
