"""Log records of a step are kept at the project's level, shown by `qflow logs` and the
dashboard's log view, in a terminal and through a pipe, on the local and parallel executors."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import QFLOW, TIMEOUT, TRACEBACK, environment, in_terminal

pytestmark = pytest.mark.integration

WORKFLOWS = """\
import logging

import qflow as qf

logger = logging.getLogger(__name__)


@qf.step
def fit(n: int) -> float:
    logger.debug("debug detail %d", n)
    logger.info("Model has a coefficient R^2 of %.3f on test data.", 0.456)
    logger.warning("few rows: %d", n)
    logging.getLogger("vendorlib").info("vendor chatter")  # a third-party library's INFO
    logging.getLogger("vendorlib").warning("vendor warning")
    return 0.456


@qf.workflow
def logged(n: int = 3):
    return fit(n)
"""


def _project(root: Path, level: str | None = None) -> Path:
    setting = f'log-level = "{level}"\n' if level else ""
    (root / "pyproject.toml").write_text(
        '[project]\nname = "loggy"\nversion = "0.1.0"\n\n[tool.qflow]\n'
        f'workflow-modules = ["loggy.workflows"]\n{setting}',
        encoding="utf-8",
    )
    package = root / "src" / "loggy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "workflows.py").write_text(WORKFLOWS, encoding="utf-8")
    return root


def _qflow(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QFLOW), *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _run_id(text: str) -> str:
    found = re.search(r"Run (\w+) succeeded", text)
    assert found, text
    return found.group(1)


R2 = "INFO loggy.workflows: Model has a coefficient R^2 of 0.456 on test data."


def test_info_logs_of_a_step_reach_the_terminal_and_qflow_logs(project: Path) -> None:
    _project(project)
    status, screen = in_terminal(["run", "logged"], project)
    assert status == 0, screen
    assert TRACEBACK not in screen
    assert R2 in screen  # echoed while the step runs, under the live display
    status, logs = in_terminal(["logs", _run_id(screen), "0_fit"], project)
    assert status == 0, logs
    assert R2 in logs and "WARNING loggy.workflows: few rows: 3" in logs
    assert "WARNING vendorlib: vendor warning" in logs
    assert "vendor chatter" not in logs  # third-party loggers keep Python's WARNING
    assert "debug detail" not in logs


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_the_project_log_level_is_kept_on_every_executor(project: Path, executor: str) -> None:
    _project(project, level="DEBUG")
    done = _qflow(["run", "logged", "--executor", executor], project)
    assert done.returncode == 0, done.stderr
    run_id = _run_id(done.stdout + done.stderr)
    echoed = done.stdout + done.stderr
    if executor == "parallel":  # worker lines carry the step's prefix
        assert re.search(r"\[0_fit\] \S+ \S+ INFO loggy\.workflows: Model has", echoed), echoed
    logs = _qflow(["logs", run_id, "0_fit"], project)
    assert logs.returncode == 0, logs.stderr
    assert "DEBUG loggy.workflows: debug detail 3" in logs.stdout
    assert R2 in logs.stdout and "vendor chatter" not in logs.stdout


def test_qflow_log_level_overrides_the_project_setting(project: Path) -> None:
    _project(project, level="DEBUG")
    done = _qflow(["run", "logged"], project, QFLOW_LOG_LEVEL="WARNING")
    assert done.returncode == 0, done.stderr
    logs = _qflow(["logs", _run_id(done.stdout + done.stderr), "0_fit"], project)
    assert "few rows: 3" in logs.stdout
    assert "coefficient" not in logs.stdout and "debug detail" not in logs.stdout


def test_a_bad_log_level_setting_is_refused_naming_the_choices(project: Path) -> None:
    _project(project, level="LOUD")
    done = _qflow(["run", "logged"], project)
    assert done.returncode == 1
    err = " ".join(done.stderr.split())  # rich wraps the line
    assert "[tool.qflow] log-level" in err and "'LOUD'" in err
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    assert TRACEBACK not in done.stderr
