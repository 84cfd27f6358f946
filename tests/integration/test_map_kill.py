"""Mapped items are recorded in batches: a map killed with ``kill -9`` mid-map resumes with
every item right, each once, and finished items reach the store while later ones run.

Items' starts and finishes reach the store in batches (``runtime.journal``), so a kill can
lose the last fraction of a second of finished items. The contract: an item recorded as
finished is never run again by ``qflow resume``, an item whose finish was lost runs again,
and the resumed run has each item once, with the right value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import qflow as qf

pytestmark = pytest.mark.integration

ITEMS = 120
FREE = 80
"""Items below this index run at once; the others wait for the ``release`` marker, which
the first run never gets, so it is always killed inside the map."""

WORKFLOW = textwrap.dedent(
    f"""
    import os, time
    from pathlib import Path
    import qflow as qf

    MARKERS = Path(os.environ["MARKERS"])

    @qf.step
    def numbers(n: int) -> list[int]:
        return list(range(n))

    @qf.step
    def square(x: int) -> int:
        while x >= {FREE} and not (MARKERS / "release").exists():
            time.sleep(0.01)
        with open(MARKERS / "executions", "a") as log:  # one short append per execution
            log.write(f"{{x}}\\n")
        return x * x + 1

    @qf.step
    def gather(values: list[int]) -> list[int]:
        return values

    @qf.workflow
    def squares(n: int = {ITEMS}):
        return gather(square.map(numbers(n)))

    if __name__ == "__main__":
        qf.run(squares, {{}}, project_dir=os.environ["PROJECT"], executor="parallel", workers=2)
    """
)


def _recorded(project: Path) -> dict[str, str]:
    """Item step runs of the only run, by name, with their recorded status."""
    if not (project / ".qflow").exists():
        return {}
    runs = qf.Client(project).runs()
    if not runs:
        return {}
    return {s.name: s.status for s in runs[0].steps if "[" in s.name}


def test_a_map_killed_mid_way_resumes_each_item_once(project: Path, tmp_path: Path) -> None:
    script = tmp_path / "squares_wf.py"
    script.write_text(WORKFLOW)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PROJECT": str(project), "MARKERS": str(markers)}
    env.pop("QFLOW_STORE", None)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its worker processes go with it
    )
    deadline = time.monotonic() + 120
    try:
        while sum(s == "succeeded" for s in _recorded(project).values()) < 30:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "items were never recorded"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    [crashed] = qf.Client(project).runs()
    assert crashed.status == "crashed"
    before = {s.name: s for s in crashed.steps if "[" in s.name}
    finished = {name for name, s in before.items() if s.status == "succeeded"}
    assert finished and all(before[name].outputs for name in finished)
    assert not any(f"[{index}]" in name for name in finished for index in range(FREE, ITEMS))

    (markers / "release").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "qflow", "resume", crashed.id, "--project", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    resumed = next(r for r in qf.Client(project).runs() if r.resumed_from == crashed.id)
    assert resumed.status == "succeeded"
    assert resumed.step("gather").load() == [x * x + 1 for x in range(ITEMS)]

    items = [s for s in resumed.steps if "[" in s.name]
    names = Counter(s.name for s in items)
    assert len(names) == ITEMS and set(names.values()) == {1}
    executions = Counter(int(line) for line in (markers / "executions").read_text().split())
    assert set(executions) == set(range(ITEMS))
    for item in items:
        if item.name in finished:  # recorded before the kill: taken, never run again
            assert item.status == "cached" and item.cached_from == before[item.name].id
            assert executions[int(item.name.split("[")[1].rstrip("]"))] == 1
        else:
            assert item.status == "succeeded"


@qf.step
def wait_for_earlier_items(x: int, project: str) -> int:
    """Item 2 returns once items 0 and 1 show as succeeded in the store, read through the
    client while it runs in the coordinator (the local executor)."""
    if x < 2:
        return x
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        steps = qf.Client(project).runs()[0].steps
        done = {s.name for s in steps if s.status == "succeeded"}
        if {"1_wait_for_earlier_items[0]", "1_wait_for_earlier_items[1]"} <= done:
            return x
        time.sleep(0.05)
    raise AssertionError("finished items were not recorded while a later one ran")


@qf.step
def upto(n: int) -> list[int]:
    return list(range(n))


def test_finished_items_are_recorded_while_a_later_item_runs(project: Path) -> None:
    @qf.workflow
    def patient(n: int = 3) -> Any:
        return wait_for_earlier_items.map(upto(n), project=str(project))

    run = qf.run(patient, {}, project_dir=project, use_cache=False)
    assert run.status == "succeeded"
    assert run.step("1_wait_for_earlier_items").load() == [0, 1, 2]
