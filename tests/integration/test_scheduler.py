"""The scheduler loop launching one real ``qflow run`` process (the clock is still fake)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qflow.ci.schedule import ScheduleStore
from qflow.ci.scheduler import ScheduleLoop, subprocess_launcher
from qflow.store import MetadataStore

WORKFLOW = """import qflow as qf


@qf.step
def count(n: int) -> int:
    qf.log_metric("n", n)
    if n < 0:
        raise ValueError("negative")
    return n


@qf.workflow
def nightly(n: int = 2):
    return count(n)
"""


@pytest.mark.integration
def test_one_real_scheduled_run_and_one_failing(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "sched"\n[tool.qflow]\nworkflow-modules = ["schedwf"]\n'
    )
    (project / "schedwf.py").write_text(WORKFLOW)
    start = datetime(2025, 1, 1, 2, 59, tzinfo=UTC).timestamp()
    store = ScheduleStore(project / ".qflow")
    good = store.add("nightly", "0 3 * * *", ["n=5"], now=start)
    bad = store.add("nightly", "0 3 * * *", ["n=-1"], now=start)
    now = [start]
    messages: list[str] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    loop = ScheduleLoop(
        store,
        subprocess_launcher(project, python=sys.executable, timeout=240),
        clock=lambda: now[0],
        sleep=sleep,
        log=messages.append,
    )
    loop.run(max_ticks=1)

    good, bad = store.get(good.id), store.get(bad.id)
    assert good.last_status == "succeeded", (good, messages)
    assert bad.last_status == "failed" and "negative" in (bad.last_error or "")
    metadata = MetadataStore(f"sqlite:///{project / '.qflow' / 'qflow.db'}")
    try:
        run = metadata.get_run(good.last_run_id or "")
        assert run.tags == {"schedule": good.id, "scheduled_for": "2025-01-01T03:00:00Z"}
        assert run.metrics_summary == {"n": 5.0}
        assert metadata.get_run(bad.last_run_id or "").status == "failed"
    finally:
        metadata.dispose()
    assert any(m.startswith("failed:") and "the scheduler goes on" in m for m in messages)
    assert list((project / ".qflow" / "scheduler" / "logs").glob(f"{good.id}-*.log"))
