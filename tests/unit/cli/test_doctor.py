from __future__ import annotations

import os
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from tests.fixtures import workflows as wf


@qf.step
def big(n: int) -> list[int]:
    return list(range(n))


@qf.workflow
def with_blob(n: int = 20_000) -> object:
    return wf.total(big(n))


def test_doctor_passes_a_healthy_store_and_names_bad_blobs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = qf.run(with_blob, {}, project_dir=project)
    assert run_cli(["doctor", "--project", str(project)]) == 0
    assert "database ok" in capsys.readouterr().out

    key = run.step("big").outputs["return"].key
    blob = qf.Client(project).artifacts.local_path(key)
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    assert run_cli(["doctor", "--project", str(project)]) == 1
    out = capsys.readouterr().out
    assert f"artifact {key}: content does not match its hash" in out

    blob.unlink()
    assert run_cli(["doctor", "--project", str(project)]) == 1
    assert f"artifact {key}: blob is missing from the store" in capsys.readouterr().out
