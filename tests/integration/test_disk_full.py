"""A full disk names the step and output, leaves nothing partial, and resume works after."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
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
    from qflow.runtime.launch import launch

    resumed = qf.Client(project).run(launch(None, project_dir=project, resume_from=failed.id))
    assert resumed.resumed_from == failed.id
    assert resumed.step("small").status == "cached"
    assert len(resumed.step("huge").load()) == 6 * 1024 * 1024
