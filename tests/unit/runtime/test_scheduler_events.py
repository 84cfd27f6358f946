"""The event-driven scheduler: completions recorded at once, failing branches beside siblings,
ready steps never waiting for unrelated ones, inputs isolated, plugins isolated."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qflow as qf
from qflow.errors import QFlowError, StepFailedError
from qflow.graph.model import Node
from qflow.plugins.markers import hookimpl
from qflow.store import open_stores
from qflow.store.metadata.records import StepOutcome, StepStatus

EXECUTORS = ["local", "parallel"]


@qf.step
def source(n: int) -> list[int]:
    return list(range(n))


@qf.step
def boom(xs: list[int]) -> int:
    raise ValueError("boom")


@qf.step
def sibling(xs: list[int]) -> int:
    return sum(xs)


@qf.step
def join(a: int, b: int) -> int:
    return a + b


@qf.step
def after(b: int) -> int:
    return b * 10


@qf.workflow
def failing_branch(n: int = 4) -> Any:
    xs = source(n)
    b = sibling(xs)
    return join(boom(xs), b), after(b)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failing_branch_skips_only_its_descendants(project: Path, executor: str) -> None:
    with pytest.raises(StepFailedError, match="step 2_boom raised ValueError: boom") as failed:
        qf.run(failing_branch, {"n": 4}, project_dir=project, executor=executor, workers=2)
    run = qf.Client(project).run(failed.value.run_id)
    status = {s.name: s.status for s in run.steps}
    assert run.status == "failed"
    assert status == {
        "0_source": "succeeded",
        "1_sibling": "succeeded",
        "2_boom": "failed",
        "3_join": "skipped",
        "4_after": "succeeded",
    }
    assert run.step("1_sibling").load() == 6
    assert run.step("4_after").load() == 60
    assert run.step("3_join").reason == "skipped because 2_boom failed"


class StoreWitness:
    """Before each step starts, reads the store as another process would."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.seen: list[dict[str, str]] = []

    @hookimpl
    def before_step(self, run_id: str, node: Node) -> None:
        metadata, _ = open_stores(self.project)
        self.seen.append({s.name: s.status for s in metadata.step_runs(run_id)})


@qf.step
def one(n: int) -> int:
    return n


@qf.step
def two(n: int) -> int:
    return n + 1


@qf.step
def three(n: int) -> int:
    return n + 2


@qf.workflow
def independent(n: int = 1) -> Any:
    return one(n), two(n), three(n)


def test_local_records_each_step_before_starting_the_next(project: Path) -> None:
    witness = StoreWitness(project)
    qf.run(independent, {"n": 1}, project_dir=project, plugins=[witness])
    assert [sorted(k for k, v in seen.items() if v == "succeeded") for seen in witness.seen] == [
        [],
        ["0_one"],
        ["0_one", "1_two"],
    ]
    assert all(list(seen.values()).count("running") == 0 for seen in witness.seen)


@qf.step
def slow(n: int) -> int:
    import time

    time.sleep(2.0)
    return n


@qf.step
def quick(x: int) -> int:
    return x + 1


@qf.step
def after_map(xs: list[int]) -> int:
    return sum(xs)


@qf.workflow
def map_beside_slow(n: int = 3) -> Any:
    return slow(n), after_map(quick.map(source(n)))


def test_a_finished_map_releases_its_downstream_at_once(project: Path) -> None:
    run = qf.run(map_beside_slow, {"n": 3}, project_dir=project, executor="parallel", workers=2)
    started = run.step("after_map").started_at
    assert started is not None and run.step("slow").ended_at is not None
    assert started < run.step("slow").ended_at  # it did not wait for the unrelated step
    assert run.step("after_map").load() == 6


@qf.step
def make_list(n: int) -> list[str]:
    return [str(i) for i in range(n)]


@qf.step
def strip_all(values: list[str]) -> list[str]:
    values.append("mutated")  # a step that edits its input in place
    return values


@qf.step
def count(values: list[str]) -> int:
    return len(values)


@qf.step
def bump(array: np.ndarray) -> float:
    array += 100  # in place, on the array it was given
    return float(array.sum())


@qf.step
def make_array(n: int) -> np.ndarray:
    return np.arange(float(n))


@qf.step
def tag_item(x: int, seen: list[str]) -> list[str]:
    seen.append(str(x))
    return seen


@qf.workflow
def mutating(n: int = 3) -> Any:
    values = make_list(n)
    array = make_array(n)
    return (
        strip_all(values),
        count(values),
        bump(array),
        bump(array),
        tag_item.map(source(n), seen=values),
    )


def test_steps_that_mutate_their_inputs_get_the_same_results_on_every_executor(
    project: Path,
) -> None:
    results = {}
    for executor in EXECUTORS:
        run = qf.run(mutating, {"n": 3}, project_dir=project, executor=executor, use_cache=False)
        results[executor] = {
            s.name: {k: ref.key for k, ref in s.outputs.items()}
            for s in run.steps
            if s.status == "succeeded"
        }
        assert run.step("count").load() == 3
        assert run.step("4_bump").load() == run.step("5_bump").load() == 303.0
        assert run.step("7_tag_item").load() == [["0", "1", "2", str(i)] for i in range(3)]
        assert run.step("make_array").load().tolist() == [0.0, 1.0, 2.0]
    assert results["local"] == results["parallel"]


class Broken:
    @hookimpl
    def after_step(self, run_id: str, node: Node, status: str) -> None:
        raise RuntimeError("tracker down")


class Recording:
    def __init__(self) -> None:
        self.steps: list[str] = []

    @hookimpl
    def after_step(self, run_id: str, node: Node, status: str) -> None:
        self.steps.append(node.name)


@pytest.mark.parametrize("broken_first", [True, False], ids=["broken-first", "broken-last"])
def test_a_failing_plugin_never_silences_the_others(
    project: Path, broken_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    recording = Recording()
    plugins = [Broken(), recording] if broken_first else [recording, Broken()]
    with caplog.at_level(logging.WARNING):
        qf.run(independent, {"n": 1}, project_dir=project, plugins=plugins)
    assert recording.steps == ["0_one", "1_two", "2_three"]
    warnings = [r.getMessage() for r in caplog.records if "tracker down" in r.getMessage()]
    assert len(warnings) == 1  # once per plugin and hook
    assert "Broken" in warnings[0] and "after_step" in warnings[0]


class Outcomes:
    """Both hook styles: one naming ``outcome``, one written before it existed."""

    def __init__(self) -> None:
        self.outcomes: dict[str, StepOutcome] = {}
        self.legacy: dict[str, tuple[str, str | None, float]] = {}

    @hookimpl
    def after_step(self, node: Node, outcome: StepOutcome) -> None:
        self.outcomes[node.name] = outcome


class LegacyTracker:
    def __init__(self, seen: dict[str, tuple[str, str | None, float]]) -> None:
        self.seen = seen

    @hookimpl
    def after_step(self, node: Node, status: str, error: str | None, duration: float) -> None:
        self.seen[node.name] = (status, error, duration)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_after_step_gets_the_outcome_the_store_recorded(project: Path, executor: str) -> None:
    hook = Outcomes()
    plugins = [hook, LegacyTracker(hook.legacy)]
    with pytest.raises(StepFailedError) as failed:
        qf.run(failing_branch, {"n": 4}, project_dir=project, executor=executor, plugins=plugins)
    steps = {s.name: s for s in qf.Client(project).run(failed.value.run_id).steps}
    assert {n: (o.status, o.error, o.reason) for n, o in hook.outcomes.items()} == {
        n: (s.status, s.error, s.reason) for n, s in steps.items()
    }
    assert "ValueError: boom" in (hook.outcomes["2_boom"].traceback or "")
    assert hook.legacy["2_boom"][:2] == ("failed", "ValueError: boom")
    assert hook.legacy["3_join"] == ("skipped", None, 0.0)  # its error holds the skip reason
    first = {n: s.id for n, s in steps.items()}

    hook.outcomes.clear()
    with pytest.raises(StepFailedError):
        qf.run(failing_branch, {"n": 4}, project_dir=project, executor=executor, plugins=plugins)
    cached = hook.outcomes["1_sibling"]
    assert (cached.status, cached.cached_from) == (StepStatus.CACHED, first["1_sibling"])
    assert cached.outputs == steps["1_sibling"].outputs
    assert hook.legacy["1_sibling"] == ("cached", None, 0.0)


def test_an_unknown_rerun_step_is_refused_before_anything_is_recorded(project: Path) -> None:
    with pytest.raises(QFlowError, match=r"(?s)--rerun 'tow'.*no such step.*Did you mean: two"):
        qf.run(independent, {"n": 1}, project_dir=project, rerun=["tow"])
    metadata, _ = open_stores(project)
    assert metadata.list_runs() == []


@qf.step
def chatter(word: str) -> int:
    for i in range(200):
        print(word, end="")  # partial lines, written while the other step writes too
        print(f" {i}")
    return 200


@qf.workflow
def two_chatty() -> Any:
    return chatter("alpha"), chatter("beta")


def test_parallel_workers_echo_whole_lines_with_the_step_prefix(
    project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = qf.run(two_chatty, {}, project_dir=project, executor="parallel", workers=2)
    echoed = [line for line in capfd.readouterr().out.splitlines() if line.startswith("[")]
    expected = {f"[0_chatter] alpha {i}" for i in range(200)}
    expected |= {f"[1_chatter] beta {i}" for i in range(200)}
    assert set(echoed) == expected and len(echoed) == 400
    assert run.step("0_chatter").stdout.splitlines()[0] == "alpha 0"  # the log has no prefix


@qf.step
def picky(x: int) -> int:
    import time

    if x in (1, 4):
        time.sleep(0.5 if x == 1 else 0.0)  # item 4 fails first in time
        raise ValueError(f"bad {x}")
    return x


@qf.workflow
def picky_map(n: int = 6) -> Any:
    return after_map(picky.map(source(n)))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failed_map_names_its_lowest_failing_item_and_logs_show_every_item(
    project: Path, executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from qflow.cli.app import run_cli

    pattern = r"step 1_picky raised item 1 \(1\) failed: ValueError: bad 1"
    with pytest.raises(StepFailedError, match=pattern) as failed:
        qf.run(picky_map, {"n": 6}, project_dir=project, executor=executor, workers=2)
    capsys.readouterr()
    assert run_cli(["logs", failed.value.run_id, "1_picky", "--project", str(project)]) == 0
    shown = capsys.readouterr().out
    assert "── 1_picky failed" in shown
    assert "── 1_picky[1] failed" in shown and "ValueError: bad 1" in shown
