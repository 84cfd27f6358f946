"""Resume after failures and after ``kill -9`` at several moments; SIGTERM ends as killed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli

pytestmark = pytest.mark.integration

WORKFLOW = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import numpy as np
    import qflow as qf

    MARKERS = Path(os.environ["MARKERS"])

    @qf.step
    def prepare(n: int) -> list[int]:
        return list(range(n))

    @qf.step
    def heavy(xs: list[int], mb: int) -> np.ndarray:
        (MARKERS / "heavy-started").write_text("x")
        return np.random.default_rng(len(xs)).random(mb * 1024 * 1024 // 8)

    @qf.step
    def chatty(xs: list[int]) -> int:
        for i in range(60_000):
            qf.log_metric("loss", 1.0 / (i + 1), step=i)
        (MARKERS / "metrics-logged").write_text("x")
        if os.environ.get("HANG") == "chatty":
            time.sleep(60)
        return len(xs)

    @qf.step
    def finish(big: np.ndarray, count: int) -> float:
        if os.environ.get("HANG") == "finish":
            (MARKERS / "finish-started").write_text("x")
            time.sleep(60)
        if (MARKERS / "fail").exists():
            raise RuntimeError("asked to fail")
        return float(big[:10].sum()) + count

    @qf.workflow
    def pipeline(n: int = 5, mb: int = 40):
        xs = prepare(n)
        return finish(heavy(xs, mb), chatty(xs))

    if __name__ == "__main__":
        qf.run(pipeline, {"n": 5, "mb": int(os.environ.get("MB", "40"))},
               project_dir=os.environ["PROJECT"], executor=os.environ.get("EXECUTOR", "local"))
    """
)


@pytest.fixture
def setup(project: Path, tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "pipeline_wf.py"
    script.write_text(WORKFLOW)
    markers = tmp_path / "markers"
    markers.mkdir()
    return {"SCRIPT": str(script), "PROJECT": str(project), "MARKERS": str(markers)}


def _start(setup: dict[str, str], **env: str) -> subprocess.Popen[bytes]:
    environ = {**os.environ, **setup, **env}
    environ.pop("QFLOW_STORE", None)
    return subprocess.Popen(
        [sys.executable, setup["SCRIPT"]],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"process ended early: {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.01)


def _blobs_are_whole(project: Path) -> None:
    root = project / ".qflow" / "artifacts"
    for blob in root.rglob("*"):
        if blob.is_file() and ".tmp" not in blob.parts:
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def _resume(setup: dict[str, str], run_id: str) -> qf.client.RunView:  # type: ignore[name-defined]
    environ = {**os.environ, **setup}
    environ.pop("QFLOW_STORE", None)
    done = subprocess.run(
        [sys.executable, "-m", "qflow", "resume", run_id, "--project", setup["PROJECT"]],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return next(r for r in qf.Client(setup["PROJECT"]).runs() if r.resumed_from == run_id)


def _only_run(project: Path) -> qf.client.RunView:  # type: ignore[name-defined]
    runs = qf.Client(project).runs()
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize(
    ("moment", "marker", "env"),
    [
        ("inside-step", "finish-started", {"HANG": "finish"}),
        ("during-artifact-write", "heavy-started", {"MB": "400"}),
        ("after-metrics-flush", "metrics-logged", {"HANG": "chatty"}),  # logged > 1 s ago
    ],
    ids=["inside-step", "during-artifact-write", "after-metrics-flush"],
)
def test_kill_9_then_resume(
    setup: dict[str, str], moment: str, marker: str, env: dict[str, str]
) -> None:
    project = Path(setup["PROJECT"])
    process = _start(setup, **env)
    _wait_for(Path(setup["MARKERS"]) / marker, process)
    if moment == "during-artifact-write":
        time.sleep(0.15)
    if moment == "after-metrics-flush":
        time.sleep(1.1)  # every point is now more than a second old: it must be durable
    process.send_signal(signal.SIGKILL)
    process.wait(30)

    _blobs_are_whole(project)
    crashed = _only_run(project)
    assert crashed.status == "crashed"
    if moment == "after-metrics-flush":
        assert len(crashed.metric_history("loss")) == 60_000

    resumed = _resume(setup, crashed.id)
    assert resumed.status == "succeeded"
    status = {s.name: s.status for s in resumed.steps}
    assert status["0_prepare"] == "cached"
    if moment == "inside-step":
        assert status["1_heavy"] == "cached" and status["2_chatty"] == "cached"
        assert status["3_finish"] == "succeeded"
    _blobs_are_whole(project)


def test_failed_run_resumes_from_the_failed_step(setup: dict[str, str]) -> None:
    project = Path(setup["PROJECT"])
    (Path(setup["MARKERS"]) / "fail").write_text("x")
    process = _start(setup, MB="1")
    assert process.wait(120) != 0
    failed = _only_run(project)
    assert failed.status == "failed"
    (Path(setup["MARKERS"]) / "fail").unlink()
    resumed = _resume(setup, failed.id)
    statuses = [s.status for s in resumed.steps]
    assert statuses == ["cached", "cached", "cached", "succeeded"]
    assert resumed.step("prepare").cached_from == failed.step("prepare").id


def test_sigterm_ends_the_run_as_killed_with_metrics_kept(setup: dict[str, str]) -> None:
    project = Path(setup["PROJECT"])
    process = _start(setup, HANG="chatty", MB="1")
    _wait_for(Path(setup["MARKERS"]) / "metrics-logged", process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) != 0
    run = _only_run(project)
    assert run.status == "killed"
    assert len(run.metric_history("loss")) == 60_000
    assert {s.name: s.status for s in run.steps}["2_chatty"] == "killed"


def test_succeeded_run_cannot_be_resumed(
    setup: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    project = Path(setup["PROJECT"])
    process = _start(setup, MB="1")
    assert process.wait(120) == 0, process.stderr.read().decode() if process.stderr else ""
    done = _only_run(project)
    code = run_cli(["resume", done.id, "--project", str(project)])
    assert code == 1
    assert "only failed, crashed or killed runs can be resumed" in capsys.readouterr().err
    assert len(qf.Client(project).runs()) == 1
