"""A step's log records: its project's loggers log at the step's level while it runs (even
ones that answered "INFO is off" before the run), each step keeps only what was logged while
it ran, and after the run every logger answers as it did before."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qflow as qf

logger = logging.getLogger(__name__)
package = logging.getLogger(__name__.split(".")[0])  # the project's logger: the step's package


@qf.step
def first(n: int) -> int:
    logger.info("first got %d", n)
    return n + 1


@qf.step
def second(n: int, child: str = "") -> int:
    (logging.getLogger(f"{__name__}.{child}") if child else logger).info("second got %d", n)
    return n * 2


@qf.workflow
def two_steps(n: int = 1, child: str = "") -> Any:
    return second(first(n), child=child)


@pytest.fixture
def warning_root() -> Iterator[None]:
    """Python's default: the root logger at WARNING and the project's logger without a level."""
    root = logging.getLogger()
    saved = root.level, package.level
    root.setLevel(logging.WARNING)
    package.setLevel(logging.NOTSET)
    yield
    root.setLevel(saved[0])
    package.setLevel(saved[1])


@pytest.mark.usefixtures("warning_root")
def test_project_loggers_log_at_info_in_steps_and_answer_as_before_after(project: Path) -> None:
    assert not logger.isEnabledFor(logging.INFO)  # logging caches this answer
    run = qf.run(two_steps, {"n": 1}, project_dir=project)
    assert run.status == "succeeded"
    first_err, second_err = run.step("first").stderr, run.step("second").stderr
    assert f"INFO {__name__}: first got 1" in first_err
    assert f"INFO {__name__}: second got 2" in second_err
    assert "second got" not in first_err and "first got" not in second_err
    assert package.level == logging.NOTSET
    assert not logger.isEnabledFor(logging.INFO)
    assert not package.isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("warning_root")
def test_a_logger_made_while_a_step_runs_answers_as_before_after_the_run(
    project: Path,
) -> None:
    child = f"made_in_step_{uuid.uuid4().hex}"
    run = qf.run(two_steps, {"n": 1, "child": child}, project_dir=project)
    assert f"INFO {__name__}.{child}: second got 2" in run.step("second").stderr
    assert not logging.getLogger(f"{__name__}.{child}").isEnabledFor(logging.INFO)
