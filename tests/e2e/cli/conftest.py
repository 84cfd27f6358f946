"""A small project on disk whose steps talk: print(), stderr, metrics, a step that waits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli.terminal import end_all

PYPROJECT = """\
[project]
name = "talky"
version = "0.1.0"

[tool.qflow]
workflow-modules = ["talky.workflows"]
"""

CONF = """\
# Config of the chatty workflow.
n: 3
"""

WORKFLOWS = '''\
"""Workflows whose steps print, as users' steps do."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import qflow as qf

ROOT = Path(__file__).resolve().parents[2]
HOLD = ROOT / "hold"
"""While this file exists, ``wait_for_release`` waits (at most 30 s)."""


@qf.step
def load(n: int) -> list[int]:
    print(f"hello from load with n={n}")
    print("load warning on stderr", file=sys.stderr)
    qf.log_metric("rows", n)
    return list(range(n))


@qf.step
def train(xs: list[int]) -> int:
    for epoch in range(3):
        print(f"train epoch {epoch}")
        qf.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    return sum(xs)


@qf.workflow
def chatty(cfg: Any) -> Any:
    return train(load(cfg.n))


@qf.step
def first(n: int) -> list[int]:
    with open(ROOT / "first.log", "a", encoding="utf-8") as log:
        log.write("ran\\n")
    print("first step ran")
    return list(range(n))


@qf.step
def wait_for_release(xs: list[int]) -> int:
    print("second step is waiting", flush=True)
    deadline = time.monotonic() + 30
    while HOLD.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("second step released")
    return len(xs)


@qf.workflow
def interrupted(n: int = 3) -> Any:
    return wait_for_release(first(n))


@qf.step
def chatter(lines: int) -> int:
    for index in range(lines):
        print(f"line {index} of a step that talks a lot")
    return lines


@qf.step
def more_chatter(count: int) -> int:
    for index in range(count):
        print(f"more {index}")
        print(f"err {index}", file=sys.stderr)
    return count


@qf.workflow
def noisy(lines: int = 20000) -> Any:
    return more_chatter(chatter(lines))


@qf.step
def give_up(count: int) -> int:
    raise ValueError(f"gave up after {count} lines")


@qf.workflow
def noisy_failure(lines: int = 20000) -> Any:
    return give_up(chatter(lines))
'''


@pytest.fixture
def talky(project: Path) -> Path:
    """The project folder with pyproject.toml, conf/ and src/talky/workflows.py."""
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "conf").mkdir()
    (project / "conf" / "chatty.yaml").write_text(CONF, encoding="utf-8")
    package = project / "src" / "talky"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "workflows.py").write_text(WORKFLOWS, encoding="utf-8")
    return project


@pytest.fixture(autouse=True)
def _no_command_left_running() -> Iterator[None]:
    """A test that fails half-way never leaves its ``qflow`` (or its workers) behind."""
    yield
    end_all()
