"""Fixtures of the conformance suite: a case folder (project + control folder) and the local
executor's output hashes that the other executors must reproduce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qflow.errors import StepFailedError

from .invariants import Shape, load_run, output_keys, write_plan

_BASELINES: dict[tuple[str, str], dict[str, dict[str, str]]] = {}


@pytest.fixture
def case(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(project folder, control folder) of one case, with an empty plan."""
    ctl = tmp_path / "ctl"
    write_plan(ctl)
    return project, ctl


def run_in_process(shape: Shape, executor: str, project: Path, ctl: Path) -> Any:
    """Run ``shape`` with ``qf.run``; the run view whether it succeeded or failed."""
    import qflow as qf

    try:
        return qf.run(
            shape.workflow, {"ctl": str(ctl)}, project_dir=project, executor=executor, workers=2
        )
    except StepFailedError as exc:
        return load_run(project, exc.run_id)


@pytest.fixture
def local_keys(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Output hashes of a shape on the local executor under a plan (computed once)."""

    def keys(shape: Shape, **plan: str) -> dict[str, dict[str, str]]:
        label = (shape.name, repr(sorted(plan.items())))
        if label not in _BASELINES:
            folder = tmp_path_factory.mktemp(f"baseline-{shape.name}")
            (folder / "proj").mkdir()
            write_plan(folder / "ctl", **plan)
            run = run_in_process(shape, "local", folder / "proj", folder / "ctl")
            _BASELINES[label] = output_keys(run)
        return _BASELINES[label]

    return keys


def remember_local(shape: Shape, run: Any, **plan: str) -> None:
    _BASELINES.setdefault((shape.name, repr(sorted(plan.items()))), output_keys(run))
