"""The parallel executor: same results as local, real concurrency, dead and stuck workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.errors import StepFailedError
from tests.fixtures import workflows as wf


def _outputs(run: Any) -> dict[str, dict[str, str]]:
    return {s.name: {k: r.key for k, r in s.outputs.items()} for s in run.steps}


@pytest.mark.parametrize(
    ("workflow", "config"),
    [(wf.linear, {"n": 5}), (wf.diamond, {"n": 4, "factor": 0.5}), (wf.multi, {"n": 6})],
    ids=["linear", "diamond", "multi"],
)
def test_parallel_gives_the_same_artifacts_as_local(
    project: Path, tmp_path: Path, workflow: Any, config: dict[str, Any]
) -> None:
    local = qf.run(workflow, config, project_dir=project, use_cache=False)
    other = tmp_path / "other"
    other.mkdir()
    parallel = qf.run(workflow, config, project_dir=other, executor="parallel", workers=2)
    assert parallel.status == "succeeded"
    assert _outputs(parallel) == _outputs(local)
    # Each step's metrics, not the run's latest value per key: steps running side by side
    # (diamond's three totals) log the same key in whichever order they end.
    assert _metrics(parallel) == _metrics(local)


def _metrics(run: Any) -> dict[str, list[tuple[str, float]]]:
    names = {s.id: s.name for s in run.steps}
    found: dict[str, list[tuple[str, float]]] = {}
    for metric in run.metric_history():
        found.setdefault(names[metric.step_run_id], []).append((metric.key, metric.value))
    return found


@qf.step
def nap(seconds: float, label: str) -> str:
    print(f"napping {label}")
    qf.log_metric(f"nap_{label}", seconds)
    time.sleep(seconds)
    return label


def test_independent_steps_overlap_in_time(project: Path) -> None:
    @qf.workflow
    def branches() -> Any:
        return nap(0.6, "a"), nap(0.6, "b")

    run = qf.run(branches, {}, project_dir=project, executor="parallel", workers=2)
    a, b = run.step("0_nap"), run.step("1_nap")
    assert a.started_at < b.ended_at and b.started_at < a.ended_at
    assert a.stdout == "napping a\n"
    assert run.metrics_summary == {"nap_a": 0.6, "nap_b": 0.6}


def test_map_on_parallel_matches_local(project: Path, tmp_path: Path) -> None:
    @qf.step
    def cube(x: int) -> int:
        return x**3

    @qf.workflow
    def fan(n: int) -> Any:
        return wf.total(cube.map(wf.load(n), max_parallel=2))

    local = qf.run(fan, {"n": 12}, project_dir=project)
    other = tmp_path / "other"
    other.mkdir()
    parallel = qf.run(fan, {"n": 12}, project_dir=other, executor="parallel", workers=2)
    assert parallel.step("total").load() == sum(x**3 for x in range(12))
    assert _outputs(parallel) == _outputs(local)


def test_dead_worker_is_reported_and_retried(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "died-once"

    @qf.step(retries=1, cache=False)
    def fragile() -> int:
        if not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return 7

    @qf.step(cache=False)
    def always_dies() -> int:
        os._exit(3)

    @qf.workflow
    def dying() -> Any:
        return fragile()

    run = qf.run(dying, {}, project_dir=project, executor="parallel", workers=1)
    assert run.step("fragile").load() == 7
    assert run.step("fragile").attempts == 2

    @qf.workflow
    def dead() -> Any:
        return always_dies()

    with pytest.raises(StepFailedError, match=r"WorkerDiedError: .*died \(exit code 3\)"):
        qf.run(dead, {}, project_dir=project, executor="parallel", workers=1)


def test_timeout_on_parallel(project: Path) -> None:
    @qf.step(timeout=0.3, cache=False)
    def slow() -> int:
        time.sleep(10)
        return 1

    @qf.workflow
    def stuck() -> Any:
        return slow()

    started = time.monotonic()
    with pytest.raises(StepFailedError, match="exceeded its timeout"):
        qf.run(stuck, {}, project_dir=project, executor="parallel", workers=1)
    assert time.monotonic() - started < 8


def test_failure_on_parallel_skips_downstream(project: Path) -> None:
    with pytest.raises(StepFailedError) as info:
        qf.run(wf.failing, {"n": 3}, project_dir=project, executor="parallel", workers=2)
    run = qf.Client(project).run(info.value.run_id)
    assert run.step("3_explode").status == "failed"
    assert run.step("1_total").status == "succeeded"
    assert [m.value for m in run.metric_history("before_error")] == [1.5]


def test_workers_must_be_positive(project: Path) -> None:
    with pytest.raises(qf.QFlowError, match="--workers must be at least 1"):
        qf.run(wf.linear, {"n": 2}, project_dir=project, executor="parallel", workers=-1)


def test_unknown_executor_lists_the_known_ones(project: Path) -> None:
    with pytest.raises(
        qf.QFlowError, match=r"(?s)Unknown executor 'paralel'.*Did you mean: parallel"
    ):
        qf.run(wf.linear, {"n": 2}, project_dir=project, executor="paralel")


def test_short_items_travel_in_batches_and_a_dying_item_is_the_one_blamed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items measured short go to workers many per message; a worker killed in the middle
    of a batch fails (here: retries) the item it was running, not its neighbours, and the
    batch's other items, run or not, all end with their own result."""
    from qflow.runtime import parallel

    sent: list[int] = []
    send = parallel.ParallelExecutor._send

    def counting(self: parallel.ParallelExecutor, slot: Any, batch: list[int]) -> None:
        sent.append(len(batch))
        send(self, slot, batch)

    monkeypatch.setattr(parallel.ParallelExecutor, "_send", counting)
    marker = tmp_path / "died-once"

    @qf.step(retries=1, cache=False)
    def fragile_item(x: int) -> int:
        if x == 700 and not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return x + 1

    @qf.workflow
    def many(n: int) -> Any:
        return wf.total(fragile_item.map(wf.load(n)))

    run = qf.run(many, {"n": 1000}, project_dir=project, executor="parallel", workers=2)
    assert run.step("total").load() == wf.total.fn(list(range(1, 1001)))
    attempts = {s.name: s.attempts for s in run.steps if s.name.startswith("1_fragile_item[")}
    assert attempts.pop("1_fragile_item[700]") == 2
    assert set(attempts.values()) == {1} and len(attempts) == 999
    assert max(sent) > 1 and len(sent) < 1000 / 4  # batches, not one message per item
