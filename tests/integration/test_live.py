"""Live runs, watched from another process: metrics visible within a second of being logged,
kept through ``kill -9``; workers that end with their coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import qflow as qf

pytestmark = pytest.mark.integration

WORKFLOW = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    import qflow as qf

    MARKERS = Path(os.environ["MARKERS"])

    @qf.step
    def start(n: int) -> int:
        return n

    @qf.step
    def train(n: int) -> int:
        (MARKERS / f"worker-{os.getpid()}").write_text("x")
        for epoch in range(n):
            qf.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
            print(f"epoch {epoch}", flush=True)
            (MARKERS / f"logged-{epoch}").write_text(str(time.time()))
            time.sleep(0.3)
        time.sleep(60)
        return n

    @qf.workflow
    def live(n: int = 5):
        return train(start(n))

    if __name__ == "__main__":
        qf.run(live, {"n": 5}, project_dir=os.environ["PROJECT"],
               executor=os.environ["EXECUTOR"], workers=1)
    """
)


def _start(tmp_path: Path, project: Path, executor: str) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "live_wf.py"
    script.write_text(WORKFLOW)
    markers = tmp_path / "markers"
    markers.mkdir()
    environ = {
        **os.environ,
        "PROJECT": str(project),
        "MARKERS": str(markers),
        "EXECUTOR": executor,
    }
    environ.pop("QFLOW_STORE", None)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, markers


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, "the run ended early"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def _losses(project: Path) -> list[int]:
    runs = qf.Client(project).runs()
    if not runs:
        return []
    return sorted(int(m.step) for m in runs[0].metric_history("loss"))


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_metrics_are_visible_within_a_second_and_survive_kill_9(
    project: Path, tmp_path: Path, executor: str
) -> None:
    process, markers = _start(tmp_path, project, executor)
    try:
        _wait_for(markers / "logged-0", process)
        logged_at = float((markers / "logged-0").read_text())
        while 0 not in _losses(project):
            assert time.time() - logged_at < 1.0, "the first point was not visible within 1 s"
            time.sleep(0.02)
        assert qf.Client(project).runs()[0].status == "running"
        _wait_for(markers / "logged-4", process)
        time.sleep(1.1)  # every point is now more than a second old
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert _losses(project) == [0, 1, 2, 3, 4]


def test_parallel_workers_end_with_a_killed_coordinator(project: Path, tmp_path: Path) -> None:
    process, markers = _start(tmp_path, project, "parallel")
    try:
        _wait_for(markers / "logged-0", process)
        worker = int(next(markers.glob("worker-*")).name.removeprefix("worker-"))
        assert worker != process.pid
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{worker}").exists() and _state(worker) != "Z":
            assert time.monotonic() < deadline, f"worker {worker} outlived its coordinator"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"
