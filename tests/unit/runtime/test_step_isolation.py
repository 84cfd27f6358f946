"""Steps that run in a container image or in their own Python environment."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.errors import StepFailedError


@qf.step
def make_input(folder: str) -> Path:
    path = Path(folder) / "scan.txt"
    path.write_text("raw scan")
    return path


@qf.step(image="alpine:3", cache=False)
def process(scan: Path, threshold: int) -> list[str]:
    return ["sh", "-c", f"wc -c {scan} > /qflow/outputs/size.txt", str(threshold)]


@qf.workflow
def containerised(folder: str) -> Any:
    return process(make_input(folder), threshold=3)


def _engine(folder: Path) -> None:
    """A stand-in docker: answers `version`, logs its argv and writes an output file."""
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo 27.0; exit 0; fi\n'
        'printf "%s\\n" "$@" > "$ARGV_LOG"\n'
        'for a in "$@"; do case "$a" in *target=/qflow/outputs) '
        'out="${a#type=bind,source=}"; out="${out%,target=/qflow/outputs}";; esac; done\n'
        'echo 8 > "$out/size.txt"\necho processed\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_container_step_mounts_inputs_and_stores_outputs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _engine(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ARGV_LOG", str(tmp_path / "argv.txt"))
    monkeypatch.delenv("QFLOW_CONTAINER_ENGINE", raising=False)
    run = qf.run(containerised, {"folder": str(tmp_path)}, project_dir=project)
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv[:3] == ["run", "--rm", "--init"]
    mounts = [a for a in argv if a.endswith(",target=/qflow/inputs/scan,readonly")]
    assert len(mounts) == 1
    source = mounts[0].removeprefix("type=bind,source=").split(",")[0]
    assert Path(source).read_text() == "raw scan"
    assert argv[-5:] == [
        "alpine:3",
        "sh",
        "-c",
        "wc -c /qflow/inputs/scan > /qflow/outputs/size.txt",
        "3",
    ]
    out = run.step("process").load()
    assert (Path(out) / "size.txt").read_text() == "8\n"
    assert run.step("process").stdout.endswith("processed\n")


def test_container_step_without_an_engine_fails_clearly(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("QFLOW_CONTAINER_ENGINE", raising=False)
    with pytest.raises(StepFailedError, match="No container engine can run this containerised"):
        qf.run(containerised, {"folder": str(tmp_path)}, project_dir=project)


@pytest.mark.integration
def test_step_runs_in_its_own_environment(project: Path) -> None:
    import six

    assert six.__version__ != "1.16.0"
    from tests.fixtures.env_steps import own_environment

    run = qf.run(own_environment, {}, project_dir=project)
    step = run.step("six_version")
    assert step.load() == "1.16.0"
    assert "[qflow] environment" in step.stdout
    assert str(project / ".qflow" / "envs") in step.stdout
