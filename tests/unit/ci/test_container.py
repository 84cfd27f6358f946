from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from qflow.runtime.container import (
    ContainerError,
    ContainerSpec,
    collect_outputs,
    container_command,
    detect_engine,
    run_container,
)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    scans = tmp_path / "artifacts" / "scans"
    scans.mkdir(parents=True)
    (scans / "a.nii").write_bytes(b"\0")
    table = tmp_path / "artifacts" / "ab" / "cdef01"
    table.parent.mkdir(parents=True)
    table.write_text("x,y\n")
    return {"scans": scans, "table.csv": table}


def test_exact_docker_command(tmp_path: Path, inputs: dict[str, Path]) -> None:
    spec = ContainerSpec(
        image="ghcr.io/org/fmri-prep:1.2",
        command=["fmriprep", "/qflow/inputs/scans", "/qflow/outputs"],
        inputs=inputs,
        output_dir=tmp_path / "out",
        env={"OMP_NUM_THREADS": "2"},
        network="none",
    )
    command = container_command(spec, "docker", run_id="01abc", step="2_prep")
    uid, gid = os.getuid(), os.getgid()
    assert command == [
        "docker", "run", "--rm", "--init",
        "--user", f"{uid}:{gid}",
        "--workdir", "/qflow/work",
        "--tmpfs", "/qflow/work:rw,exec,mode=1777",
        "--network", "none",
        "--mount", f"type=bind,source={inputs['scans']},target=/qflow/inputs/scans,readonly",
        "--mount",
        f"type=bind,source={inputs['table.csv']},target=/qflow/inputs/table.csv,readonly",
        "--mount", f"type=bind,source={tmp_path / 'out'},target=/qflow/outputs",
        "--env", "QFLOW_INPUTS=/qflow/inputs",
        "--env", "QFLOW_OUTPUTS=/qflow/outputs",
        "--env", "QFLOW_RUN_ID=01abc",
        "--env", "QFLOW_STEP=2_prep",
        "--env", "OMP_NUM_THREADS=2",
        "--", "ghcr.io/org/fmri-prep:1.2",
        "fmriprep", "/qflow/inputs/scans", "/qflow/outputs",
    ]  # fmt: skip


def test_podman_runs_as_the_caller(tmp_path: Path) -> None:
    """Rootless podman keeps the user namespace; podman run by root refuses keep-id, so it
    gets --user like docker (tests/integration/test_container_engine.py runs it for real)."""
    command = container_command(
        ContainerSpec("alpine:3", ["true"], output_dir=tmp_path), "/usr/bin/podman"
    )
    if os.getuid() == 0:
        assert command[:6] == ["/usr/bin/podman", "run", "--rm", "--init", "--user", "0:0"]
        assert "--userns" not in command
    else:
        assert command[:6] == ["/usr/bin/podman", "run", "--rm", "--init", "--userns", "keep-id"]
        assert "--user" not in command


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ContainerSpec("", ["x"]), "is not an image reference"),
        (ContainerSpec("--privileged", ["x"]), "is not an image reference"),
        (ContainerSpec("alpine", ["x"], inputs={"../etc": Path("/")}), "cannot be a file name"),
        (ContainerSpec("alpine", ["x"], inputs={"a": Path("/nope/none")}), "does not exist"),
        (ContainerSpec("alpine", ["x"], env={"A B": "1"}), "is not valid"),
    ],
    ids=["empty", "option", "traversal", "missing", "env"],
)
def test_bad_specs_are_refused(spec: ContainerSpec, message: str) -> None:
    with pytest.raises(ContainerError, match=message):
        container_command(spec)


def test_no_engine_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("QFLOW_CONTAINER_ENGINE", raising=False)
    with pytest.raises(ContainerError, match="docker is not on PATH; podman is not on PATH"):
        detect_engine()


def _fake_engine(folder: Path, name: str, script: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_docker_without_daemon_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_engine(
        tmp_path,
        "docker",
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2\nexit 1\n',
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("QFLOW_CONTAINER_ENGINE", raising=False)
    with pytest.raises(ContainerError, match="its engine does not answer: Cannot connect") as info:
        detect_engine()
    assert "systemctl start docker" in str(info.value)


def test_run_container_with_an_engine_that_answers(
    tmp_path: Path, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in engine: answers `version`, and for `run` records its argv and writes an output
    # into the host folder mounted at /qflow/outputs.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_engine(
        bin_dir,
        "podman",
        'if [ "$1" = version ]; then echo 5.0; exit 0; fi\n'
        'printf "%s\\n" "$@" > "$ARGV_LOG"\n'
        'for a in "$@"; do case "$a" in *target=/qflow/outputs) '
        'out="${a#type=bind,source=}"; out="${out%,target=/qflow/outputs}";; esac; done\n'
        'mkdir -p "$out/sub" && echo 42 > "$out/sub/result.txt"\necho done\n',
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("ARGV_LOG", str(tmp_path / "argv.txt"))
    spec = ContainerSpec("alpine:3", ["sh", "-c", "echo hi"], inputs, tmp_path / "out")
    result = run_container(spec, engine="podman")
    assert result.returncode == 0 and result.stdout == "done\n"
    assert (tmp_path / "argv.txt").read_text().splitlines() == result.command[1:]
    assert result.outputs == {"sub/result.txt": tmp_path / "out" / "sub" / "result.txt"}
    assert collect_outputs(tmp_path / "out") == result.outputs
