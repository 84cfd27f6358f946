"""Cache decisions of a large map are made in batches: the same hits, misses and reasons as
one by one, a few store queries per map, and a bad item still fails alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.errors import StepFailedError
from qflow.runtime.scheduler import ITEM_DECISIONS
from qflow.store.metadata.records import StepStatus
from qflow.store.metadata.store import SqlMetadataStore


@qf.step
def numbers(values: list[int]) -> list[int]:
    return list(values)


@qf.step
def double(x: int) -> int:
    return 2 * x


@qf.step
def total(xs: list[int]) -> int:
    return sum(xs)


@qf.workflow
def doubled(values: list[int]) -> Any:
    return total(double.map(numbers(values)))


@qf.step
def size(path: qf.DataFile) -> int:
    return Path(path).stat().st_size


@qf.step
def paths(folder: str, n: int) -> list[str]:
    return [str(Path(folder) / f"{i}.txt") for i in range(n)]


@qf.workflow
def sizes(folder: str, n: int) -> Any:
    return total(size.map(paths(folder, n)))


class Counted:
    """Counts the calls of the SQL store's cache lookups (class-wide, as qf.run opens its
    own store)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {}
        for name in ("find_cached", "find_cached_many", "previous_step_run", "previous_step_runs"):
            self._wrap(monkeypatch, name)

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        method = getattr(SqlMetadataStore, name)

        def counted(store: SqlMetadataStore, *args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(store, *args, **kwargs)

        monkeypatch.setattr(SqlMetadataStore, name, counted)


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_a_large_map_is_decided_in_batches_with_the_same_outcomes(
    project: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    n = ITEM_DECISIONS * 2 + 50
    options: dict[str, Any] = {"workers": 2} if executor == "parallel" else {}
    first = qf.run(doubled, {"values": list(range(n))}, project_dir=project, **options)
    assert first.status == "succeeded" and first.step("total").load() == n * (n - 1)
    changed = {3, ITEM_DECISIONS + 7, n - 1}
    values = [v + 100_000 if v in changed else v for v in range(n)]
    counted = Counted(monkeypatch)
    second = qf.run(doubled, {"values": values}, project_dir=project, **options)
    assert second.step("total").load() == 2 * sum(values)
    items = {s.name: s for s in second.steps if s.name.startswith("1_double[")}
    assert len(items) == n
    for index in range(n):
        item = items[f"1_double[{index}]"]
        if index in changed:
            assert item.status is StepStatus.SUCCEEDED, index
            assert item.reason == "input x changed", index
        else:
            assert item.status is StepStatus.CACHED, index
            assert item.reason == f"cached from {first.id}/1_double[{index}]", index
    # one lookup per batch of items (and one for each other step), not one per item
    batches = -(-n // ITEM_DECISIONS)
    assert counted.calls.get("find_cached", 0) == 0
    assert counted.calls["find_cached_many"] <= batches + 3
    assert counted.calls.get("previous_step_runs", 0) <= batches + 3


def test_an_item_whose_data_file_is_missing_fails_alone(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(10):
        if i != 7:
            (folder / f"{i}.txt").write_text("x" * i)
    with pytest.raises(StepFailedError):
        qf.run(sizes, {"folder": str(folder), "n": 10}, project_dir=project)
    run = qf.Client(project).runs(limit=1)[0]
    steps = {s.name: s for s in run.steps}
    assert [steps[f"1_size[{i}]"].status for i in range(7)] == [StepStatus.SUCCEEDED] * 7
    assert steps["1_size[7]"].status is StepStatus.FAILED
    assert "7.txt" in (steps["1_size[7]"].error or "")
    assert "No such file" in (steps["1_size[7]"].error or "")
    assert "item 7" in (steps["1_size"].error or "")


@qf.step
def scaled(x: int, table: qf.DataFile) -> int:
    return x * Path(table).stat().st_size


@qf.workflow
def scaled_all(values: list[int], table: str) -> Any:
    return total(scaled.map(numbers(values), table=qf.DataFile(table)))


def test_a_map_whose_data_file_is_missing_fails_on_its_first_item_with_the_cause(
    project: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "table.csv"
    with pytest.raises(StepFailedError):
        qf.run(scaled_all, {"values": [1, 2, 3], "table": str(missing)}, project_dir=project)
    run = qf.Client(project).runs(limit=1)[0]
    steps = {s.name: s for s in run.steps}
    assert steps["1_scaled[0]"].status is StepStatus.FAILED
    assert "table.csv" in (steps["1_scaled[0]"].error or "")
    assert "does not exist" in (steps["1_scaled[0]"].error or "")
    assert {steps[f"1_scaled[{i}]"].status for i in (1, 2)} == {StepStatus.SKIPPED}
    assert (steps["1_scaled"].error or "").startswith("item 0")
    assert steps["2_total"].status is StepStatus.SKIPPED


@qf.step
def read_length(path: str) -> int:
    with open(path) as file:  # a read QFlow records: the cache checks the file's content
        return len(file.read())


@qf.workflow
def lengths(folder: str, n: int) -> Any:
    return total(read_length.map(paths(folder, n)))


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_items_whose_read_file_changed_run_again_the_others_are_hits(
    project: Path, tmp_path: Path, executor: str
) -> None:
    n = ITEM_DECISIONS + 20
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.txt").write_text("x" * (i % 7))
    options: dict[str, Any] = {"workers": 2} if executor == "parallel" else {}
    config = {"folder": str(folder), "n": n}
    first = qf.run(lengths, config, project_dir=project, **options)
    edited = {5, ITEM_DECISIONS + 3}
    for i in edited:
        (folder / f"{i}.txt").write_text("edited, longer")
    second = qf.run(lengths, config, project_dir=project, **options)
    assert second.step("total").load() == first.step("total").load() + sum(
        len("edited, longer") - i % 7 for i in edited
    )
    items = {s.name: s for s in second.steps if s.name.startswith("1_read_length[")}
    for index in range(n):
        item = items[f"1_read_length[{index}]"]
        if index in edited:
            assert item.status is StepStatus.SUCCEEDED, index
            assert f"{index}.txt" in (item.reason or ""), item.reason
        else:
            assert item.status is StepStatus.CACHED, (index, item.reason)
    third = qf.run(lengths, config, project_dir=project, **options)
    assert {s.status for s in third.steps if "[" in s.name} == {StepStatus.CACHED}


@qf.step
def nap_item(x: int) -> int:
    time.sleep(0.01)
    return x


@qf.workflow
def napping(n: int) -> Any:
    return total(nap_item.map(numbers(list(range(n)))))


def test_a_map_reports_the_time_its_items_took(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qflow.runtime.progress import PlainProgress

    run = qf.run(napping, {"n": 30}, project_dir=project, plugins=[PlainProgress()])
    line = next(x for x in capsys.readouterr().err.splitlines() if "1_nap_item succeeded" in x)
    assert float(line.rsplit(" in ", 1)[1].rstrip("s")) >= 0.3  # 30 items of 10 ms, not 0
    mapped = run.step("1_nap_item")
    items = [s for s in run.steps if s.name.startswith("1_nap_item[")]
    assert mapped.started_at is not None and mapped.ended_at is not None
    assert mapped.started_at <= min(s.started_at or 0 for s in items)
    assert mapped.ended_at >= max(s.ended_at or 0 for s in items)
