"""Bad input through the real `qflow` script: one short message, exit 1, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QFLOW = Path(sys.executable).with_name("qflow")

FLOW = """\
import json
from dataclasses import dataclass

import qflow as qf


@qf.step
def pair() -> tuple[int, int]:
    return 1, 2


@qf.step
def one() -> int:
    return 1


@qf.step
class Scale:
    factor: float = 1.0

    def __call__(self, x: int) -> float:
        return x * self.factor


@qf.workflow
def unpack():
    a, b, c = pair()  # unpack-here
    return a


@qf.workflow
def dumps():
    handle = one()
    json.dumps({"handle": handle})  # dumps-here
    return handle


@qf.workflow
def branch():
    handle = one()
    if handle:  # branch-here
        return handle
    return None


@qf.workflow
def undecorated():
    return Scale(factor=2.0)(one())  # scale-here
"""


def _line(marker: str) -> int:
    return next(i for i, text in enumerate(FLOW.splitlines(), 1) if text.endswith(f"# {marker}"))


def _qflow(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QFLOW_STORE", "QFLOW_TRACKING_URI", "QFLOW_ARTIFACTS")
    }
    env.update(NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [str(QFLOW), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "somewhere"
    made.mkdir()
    return made


def _assert_short_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 4, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [["runs"], ["show", "01ABC"], ["models", "list"], ["lineage", "01ABC", "1_fit"]],
    ids=["runs", "show", "models-list", "lineage"],
)
def test_read_command_outside_a_project(folder: Path, args: list[str]) -> None:
    result = _qflow(folder, *args)
    _assert_short_failure(
        result,
        f"Not a QFlow project: '{folder.resolve()}'",
        "Hint: cd into a project, pass --project, or run qflow new",
    )
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("workflow", "needles"),
    [
        (
            "unpack",
            ["unpack step 'pair'", "into: 3", "has 2 outputs", f"flow.py:{_line('unpack-here')}"],
        ),
        (
            "dumps",
            [
                "Workflow 'dumps' used a step output as a plain value",
                f"flow.py:{_line('dumps-here')}",
            ],
        ),
        ("branch", ["Cannot branch on", f"flow.py:{_line('branch-here')}"]),
        (
            "undecorated",
            ["Class step 'Scale'", "Hint: add @dataclass", f"flow.py:{_line('scale-here')}"],
        ),
    ],
    ids=["unpack-wrong-count", "json-dumps-handle", "if-handle", "class-without-dataclass"],
)
def test_trace_errors_are_one_message_at_the_users_line(
    folder: Path, workflow: str, needles: list[str]
) -> None:
    (folder / "flow.py").write_text(FLOW)
    result = _qflow(folder, "run", f"flow.py:{workflow}")
    _assert_short_failure(result, *needles)
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == ["flow.py"]


def test_trace_error_inside_a_project_records_no_run(folder: Path) -> None:
    (folder / "pyproject.toml").write_text('[project]\nname = "p"\n[tool.qflow]\n')
    (folder / "flow.py").write_text(FLOW)
    _assert_short_failure(
        _qflow(folder, "run", "flow.py:unpack"), f"flow.py:{_line('unpack-here')}"
    )
    assert not (folder / ".qflow").exists()
    listed = _qflow(folder, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
    assert not (folder / ".qflow").exists()
