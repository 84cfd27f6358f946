"""A full disk names the step and output, leaves nothing partial, and resume works after."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import StepFailedError

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (CI runs as root, which may mount)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@qf.step
def small() -> list[int]:
    return list(range(10))


@qf.step
def huge(xs: list[int], megabytes: int) -> bytes:
    return bytes(megabytes * 1024 * 1024)


@qf.workflow
def fills_disk(megabytes: int = 6) -> Any:
    return huge(small(), megabytes)


def test_disk_full_then_resume(
    project: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QFLOW_ARTIFACTS", str(small_disk))
    with pytest.raises(StepFailedError, match=r"Output '1_huge' .*No space left on device") as info:
        qf.run(fills_disk, {}, project_dir=project)
    leftovers = [p for p in small_disk.rglob("*") if p.is_file()]
    assert leftovers == []
    failed = qf.Client(project).run(info.value.run_id)
    assert failed.step("small").status == "succeeded"

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    from qflow.runtime.launch import LaunchRequest, launch

    resumed = qf.Client(project).run(
        launch(LaunchRequest(None, project_dir=project, resume_from=failed.id))
    )
    assert resumed.resumed_from == failed.id
    assert resumed.step("small").status == "cached"
    assert len(resumed.step("huge").load()) == 6 * 1024 * 1024
    assert run_cli(["doctor", "--project", str(project)]) == 0


def test_disk_full_with_the_database_on_it(
    tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole project (SQLite database and artifacts) on the full disk: the failure is one
    error naming the output, what was recorded before stays readable, the database stays
    whole, and once there is room a resume finishes the run."""
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    project = small_disk / "proj"
    project.mkdir()
    with pytest.raises(StepFailedError, match=r"Output '1_huge' .*No space left on device") as info:
        qf.run(fills_disk, {"megabytes": 5}, project_dir=project)
    failed = qf.Client(project).run(info.value.run_id)
    assert failed.status == "failed"
    assert failed.step("small").status == "succeeded"
    assert failed.step("small").load() == list(range(10))
    leftovers = [p for p in (project / ".qflow" / "artifacts").rglob("*") if ".tmp" in p.parts]
    assert [p for p in leftovers if p.is_file()] == []

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    from qflow.runtime.launch import LaunchRequest, launch

    resumed = qf.Client(project).run(
        launch(LaunchRequest(None, project_dir=project, resume_from=failed.id))
    )
    assert resumed.status == "succeeded"
    assert resumed.step("small").status == "cached"
    assert len(resumed.step("huge").load()) == 5 * 1024 * 1024
    assert run_cli(["doctor", "--project", str(project)]) == 0


FILLS_THE_DATABASE_DISK = """
import os

import qflow as qf


@qf.step
def first() -> list[int]:
    return list(range(10))


@qf.step
def fill(xs: list[int], path: str) -> int:
    if os.path.exists(path + ".armed"):  # fill the disk, then log: the database cannot grow
        with open(path, "ab") as out:
            try:
                while True:
                    out.write(bytes(65536))
                    out.flush()
            except OSError:
                pass
    for i in range(2000):
        qf.log_metric("m", float(i), step=i)
    return len(xs)


@qf.workflow
def dbfull(cfg):
    return fill(first(), cfg.path)
"""


def test_the_database_disk_full_mid_run(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLite database's disk fills up while a step logs: ``qflow run`` ends with one line
    naming the store and the full disk (no 30 s of retries: a full disk is not transient),
    what was recorded before is intact, and once there is room the run is found crashed and
    a resume finishes it without re-running the finished step."""
    from tests.integration.reliability.conftest import clean_env, write_project

    project = write_project(small_disk / "proj", FILLS_THE_DATABASE_DISK, module="dbfullwf")
    filler = small_disk / "filler"
    armed = small_disk / "filler.armed"
    armed.touch()
    done = subprocess.run(
        [sys.executable, "-m", "qflow", "run", "dbfull", f"+path={filler}"],
        cwd=project,
        env={**clean_env(), "NO_COLOR": "1", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "database or disk is full" in done.stderr
    filler.unlink()
    armed.unlink()
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    [failed] = qf.Client(project).runs()
    assert failed.status in ("crashed", "failed")
    assert failed.step("first").status == "succeeded"
    assert failed.step("first").load() == list(range(10))
    assert run_cli(["doctor", "--project", str(project)]) == 0

    from qflow.runtime.launch import LaunchRequest, launch

    resumed = qf.Client(project).run(
        launch(LaunchRequest(None, project_dir=project, resume_from=failed.id))
    )
    assert resumed.status == "succeeded"
    assert resumed.step("first").status == "cached"
    assert resumed.step("fill").load() == 10
    assert len(resumed.metric_history("m")) == 2000
