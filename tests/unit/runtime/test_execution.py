"""Map, conditions, catch, timeouts, data files and explained cache misses on the local executor."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.errors import StepFailedError
from tests.fixtures import workflows as wf


@qf.step
def square(x: int, offset: int = 0) -> int:
    qf.log_metric("x", x)
    return x * x + offset


@qf.step
def total_of(values: list[Any]) -> int:
    return sum(v for v in values if v)


@qf.step(catch=True)
def fragile(x: int) -> int:
    if x == 2:
        raise ValueError("two is bad")
    return x


@qf.step
def check(xs: list[int]) -> dict[str, bool]:
    return {"passed": sum(xs) > 3}


@qf.step(outputs=("passed", "score"))
def gate(xs: list[int]) -> tuple[bool, int]:
    return sum(xs) > 3, sum(xs)


def test_map_over_a_list_made_at_run_time(project: Path) -> None:
    @qf.workflow
    def fan(n: int = 4) -> Any:
        return total_of(square.map(wf.load(n), offset=1))

    run = qf.run(fan, {"n": 4}, project_dir=project)
    assert run.step("total_of").load() == (0 + 1 + 4 + 9) + 4
    names = [s.name for s in run.steps]
    assert names[:2] == ["0_load", "1_square"]
    assert {f"1_square[{i}]" for i in range(4)} <= set(names)
    assert run.step("1_square").load() == [1, 2, 5, 10]
    assert run.step("1_square[2]").load() == 5
    assert sorted(m.value for m in run.metric_history("x")) == [0, 1, 2, 3]


def test_map_items_are_cached_one_by_one(project: Path) -> None:
    @qf.workflow
    def fan(xs: list[int]) -> Any:
        return total_of(square.map(xs))

    qf.run(fan, {"xs": [1, 2, 3]}, project_dir=project)
    again = qf.run(fan, {"xs": [1, 2, 3, 4]}, project_dir=project)
    status = {s.name: s.status for s in again.steps}
    assert [status[f"0_square[{i}]"] for i in range(4)] == ["cached"] * 3 + ["succeeded"]
    assert again.step("total_of").load() == 30


def test_nested_maps_and_empty_lists(project: Path) -> None:
    @qf.step
    def ranges(n: int) -> list[int]:
        return list(range(n))

    @qf.workflow
    def nested(xs: list[int]) -> Any:
        lists = ranges.map(xs)
        return total_of(total_of.map(lists)), total_of(square.map([]))

    run = qf.run(nested, {"xs": [1, 2, 3]}, project_dir=project)
    assert run.step("2_total_of").load() == 0 + 1 + 3
    assert run.step("4_total_of").load() == 0


def test_map_with_catch_keeps_other_items(project: Path) -> None:
    @qf.workflow
    def caught(xs: list[int]) -> Any:
        return total_of(fragile.map(xs))

    run = qf.run(caught, {"xs": [1, 2, 3]}, project_dir=project)
    assert run.status == "succeeded"
    values = run.step("0_fragile").load()
    assert values[0] == 1 and values[2] == 3
    assert isinstance(values[1], qf.Failed) and "two is bad" in values[1].error
    assert run.step("0_fragile[1]").status == "failed"
    assert run.step("total_of").load() == 4


def test_map_without_catch_fails_the_map(project: Path) -> None:
    @qf.step
    def strict(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    @qf.workflow
    def failing_map(xs: list[int]) -> Any:
        return total_of(strict.map(xs, max_parallel=1))

    with pytest.raises(StepFailedError, match=r"item 1 \(2\) failed: ValueError: two") as info:
        qf.run(failing_map, {"xs": [1, 2, 3]}, project_dir=project)
    status = {s.name: s.status for s in qf.Client(project).run(info.value.run_id).steps}
    assert status["0_strict"] == "failed"
    assert status["1_total_of"] == "skipped"
    assert status["0_strict[2]"] == "skipped"


def test_map_over_something_that_is_not_a_list(project: Path) -> None:
    @qf.step
    def number() -> int:
        return 3

    @qf.workflow
    def bad_map() -> Any:
        return square.map(number())

    with pytest.raises(StepFailedError, match="which is a int, not a list"):
        qf.run(bad_map, {}, project_dir=project)


def test_catch_gives_downstream_a_failed_value(project: Path) -> None:
    @qf.step
    def describe(value: Any) -> str:
        return "failed" if isinstance(value, qf.Failed) else "ok"

    @qf.workflow
    def caught_one() -> Any:
        return describe(fragile(2))

    run = qf.run(caught_one, {}, project_dir=project)
    assert run.status == "succeeded"
    assert run.step("fragile").status == "failed"
    assert run.step("describe").load() == "failed"


def test_when_runs_or_skips_the_block(project: Path) -> None:
    @qf.workflow
    def conditional(n: int) -> Any:
        xs = wf.load(n)
        verdict = gate(xs)
        with qf.when(verdict.passed):
            doubled = wf.double(xs)
            reported = wf.total(doubled)
        return reported, wf.total(xs)

    passed = qf.run(conditional, {"n": 4}, project_dir=project)
    assert {s.name: s.status for s in passed.steps}["3_total"] == "succeeded"
    skipped = qf.run(conditional, {"n": 2}, project_dir=project, use_cache=False)
    status = {s.name: s.status for s in skipped.steps}
    assert status == {
        "0_load": "succeeded",
        "1_gate": "succeeded",
        "2_double": "skipped",
        "3_total": "skipped",
        "4_total": "succeeded",
    }
    assert skipped.status == "succeeded"
    assert skipped.step("2_double").reason == "condition 1_gate.passed was False"


def test_when_is_drawn_in_the_graph() -> None:
    from qflow.graph.render import to_dot, to_mermaid

    @qf.workflow
    def conditional() -> Any:
        verdict = gate(wf.load(3))
        with qf.when(verdict.passed):
            wf.double(wf.load(1))
        return None

    graph = conditional.trace().graph
    assert "n_1_gate -.->|when passed| n_3_double" in to_mermaid(graph)
    assert "style=dashed" in to_dot(graph)


def test_when_needs_a_step_output() -> None:
    with pytest.raises(qf.QFlowError, match=r"qf\.when takes a step output"):
        qf.when(True)  # type: ignore[arg-type]


@qf.step(timeout="0.3s", retries=1, cache=False)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_timeout_stops_the_step_and_retries(project: Path) -> None:
    @qf.workflow
    def slow() -> Any:
        return sleepy(5.0)

    started = time.monotonic()
    with pytest.raises(StepFailedError, match=r"exceeded its timeout of 0\.3s") as info:
        qf.run(slow, {}, project_dir=project)
    assert time.monotonic() - started < 3
    step = qf.Client(project).run(info.value.run_id).step("sleepy")
    assert step.attempts == 2
    assert "attempt 1 failed: TimeoutError" in step.stderr


def test_bad_timeout_is_refused() -> None:
    with pytest.raises(qf.QFlowError, match="Timeout 'soon' is not a duration"):
        qf.step(timeout="soon")(lambda: 1)


@qf.step
def read_file(path: qf.DataFile) -> str:
    return Path(path).read_text()


def test_data_file_hash_is_recorded_and_invalidates_the_cache(
    project: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")

    @qf.workflow
    def reader(path: str) -> Any:
        return read_file(path)

    first = qf.run(reader, {"path": str(data)}, project_dir=project)
    files = qf.Client(project).metadata.data_files(first.id)
    assert [(f.name, f.path, f.size) for f in files] == [("path", str(data), 3)]
    assert (
        qf.run(reader, {"path": str(data)}, project_dir=project).step("read_file").status
        == "cached"
    )
    data.write_text("two!")
    changed = qf.run(reader, {"path": str(data)}, project_dir=project)
    step = changed.step("read_file")
    assert step.status == "succeeded"
    assert step.load() == "two!"
    assert "data file path (data.txt) changed" in step.reason


def test_missing_data_file_fails_the_step_clearly(project: Path, tmp_path: Path) -> None:
    @qf.workflow
    def reader(path: str) -> Any:
        return read_file(path)

    with pytest.raises(StepFailedError, match=r"DataFile .*missing\.csv.* does not exist"):
        qf.run(reader, {"path": str(tmp_path / "missing.csv")}, project_dir=project)


def test_cache_misses_are_explained(project: Path) -> None:
    first = qf.run(wf.diamond, {"n": 3, "factor": 0.5}, project_dir=project)
    assert first.step("0_load").reason == "first run of this step"
    changed = qf.run(wf.diamond, {"n": 3, "factor": 2.0}, project_dir=project)
    assert changed.step("2_Scale").reason == "param factor: 0.5 → 2.0"
    assert changed.step("4_total").reason == "input xs changed"
    assert changed.step("0_load").reason.startswith("cached from ")
    forced = qf.run(wf.diamond, {"n": 3, "factor": 2.0}, project_dir=project, use_cache=False)
    assert forced.step("0_load").reason == "--no-cache"


def test_changed_code_is_explained_and_invalidates_downstream(project: Path) -> None:
    def build(multiplier: int) -> Any:
        namespace: dict[str, Any] = {"qf": qf}
        exec(  # a step whose source really changes between runs
            "import qflow as qf\n"
            "@qf.step\n"
            f"def scale(xs):\n    return [x * {multiplier} for x in xs]\n",
            namespace,
        )
        step = namespace["scale"]
        step.__dict__["source"] = f"def scale(xs):\n    return [x * {multiplier} for x in xs]\n"

        @qf.workflow(name="codechange")
        def flow() -> Any:
            return wf.total(step(wf.load(3)))

        return flow

    qf.run(build(2), {}, project_dir=project)
    again = qf.run(build(3), {}, project_dir=project)
    status = {s.name: s.status for s in again.steps}
    assert status == {"0_load": "cached", "1_scale": "succeeded", "2_total": "succeeded"}
    assert again.step("1_scale").reason == "the step's code changed"
    assert again.step("2_total").load() == 9


def test_serializer_change_reruns_exactly_the_steps_it_writes(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np = pytest.importorskip("numpy")
    from qflow.store import serializers

    @qf.step
    def array(n: int) -> Any:
        return np.arange(n, dtype=np.float64)

    @qf.step
    def stats(values: Any) -> dict[str, float]:
        return {"sum": float(values.sum())}

    @qf.step
    def report(summary: dict[str, float]) -> bytes:
        return f"sum={summary['sum']}".encode()

    @qf.workflow(name="serializers")
    def flow(n: int = 5) -> Any:
        return report(stats(array(n)))

    qf.run(flow, {}, project_dir=project)
    json_serializer = serializers.by_name("json")
    monkeypatch.setattr(json_serializer, "version", json_serializer.version + ".next")
    again = qf.run(flow, {}, project_dir=project)
    status = {s.name: s.status for s in again.steps}
    assert status == {"0_array": "cached", "1_stats": "succeeded", "2_report": "cached"}
    assert again.step("stats").reason == (
        f"serializer json changed ({json_serializer.version.removesuffix('.next')} → "
        f"{json_serializer.version})"
    )
