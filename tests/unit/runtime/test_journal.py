"""The step journal writes starts, finishes and read files in batches, on a real SQLite store."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from qflow.runtime.journal import StepJournal
from qflow.store.metadata.records import DataFileRecord, StepOutcome, StepStart, StepStatus
from qflow.store.metadata.store import SqlMetadataStore


class Recording:
    """The store, with the names of the writes the journal makes, in order."""

    def __init__(self, store: SqlMetadataStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return call


def _store(tmp_path: Path) -> tuple[SqlMetadataStore, str, list[int]]:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'qflow.db'}")
    run = store.create_run(workflow="wf", config={})
    entries = [{"name": f"0_f[{i}]", "step": "f", "position": 0, "params": {}} for i in range(3)]
    return store, run.id, store.create_step_runs(run.id, entries)


def test_one_flush_writes_files_first_then_every_start_and_finish(tmp_path: Path) -> None:
    store, run_id, (a, b, c) = _store(tmp_path)
    recording = Recording(store)
    journal = StepJournal(recording)  # type: ignore[arg-type]
    read = DataFileRecord("read:data.csv", "/p/data.csv", "ab" * 32, 3)
    journal.start(StepStart(a, cache_key="k", reason="first run", started_at=10.0))
    journal.start(StepStart(b))
    journal.finish(a, StepOutcome(StepStatus.SUCCEEDED, started_at=10.0, ended_at=11.0), [read])
    journal.finish(a, StepOutcome(StepStatus.FAILED, error="late"))  # the first one stands
    journal.finish(c, StepOutcome(StepStatus.SKIPPED, attempts=0, reason="an item failed"))
    assert recording.calls == []  # nothing is due yet
    journal.flush()
    journal.flush()  # nothing left: no write
    assert recording.calls == ["record_data_files", "record_step_runs"]
    steps = {s.id: s for s in store.step_runs(run_id)}
    assert steps[a].status is StepStatus.SUCCEEDED
    assert (steps[a].cache_key, steps[a].reason) == ("k", "first run")  # from its start
    assert (steps[a].started_at, steps[a].ended_at) == (10.0, 11.0)
    assert steps[b].status is StepStatus.RUNNING
    assert steps[c].status is StepStatus.SKIPPED
    assert [f.path for f in store.data_files(run_id, a)] == ["/p/data.csv"]
    store.dispose()


def test_a_full_journal_is_written_by_the_call_that_fills_it(tmp_path: Path) -> None:
    store, run_id, ids = _store(tmp_path)
    recording = Recording(store)
    journal = StepJournal(recording, entries=2)  # type: ignore[arg-type]
    for step_run_id in ids:
        journal.finish(step_run_id, StepOutcome(StepStatus.SUCCEEDED))
    assert recording.calls == ["record_step_runs"]  # the first two, before the third
    assert len(journal) == 1
    journal.close()  # never opened: writes the rest
    assert all(s.status is StepStatus.SUCCEEDED for s in store.step_runs(run_id))
    store.dispose()


class Blocking(Recording):
    """The store, with ``record_step_runs`` held until ``release`` is set."""

    def __init__(self, store: SqlMetadataStore) -> None:
        super().__init__(store)
        self.writing = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name != "record_step_runs":
            return call

        def held(*args: Any, **kwargs: Any) -> Any:
            self.writing.set()
            assert self.release.wait(10)
            return call(*args, **kwargs)

        return held


def test_notes_are_taken_while_a_write_runs_and_a_flush_waits_for_it(tmp_path: Path) -> None:
    store, run_id, (a, b, c) = _store(tmp_path)
    blocking = Blocking(store)
    journal = StepJournal(blocking)  # type: ignore[arg-type]
    journal.finish(a, StepOutcome(StepStatus.SUCCEEDED))
    writer = threading.Thread(target=journal.flush)
    writer.start()
    assert blocking.writing.wait(10)
    journal.finish(b, StepOutcome(StepStatus.SUCCEEDED))  # does not wait for the write
    assert len(journal) == 1
    flushed = threading.Event()
    second = threading.Thread(target=lambda: (journal.flush(), flushed.set()))
    second.start()
    assert not flushed.wait(0.2)  # the write of a is still running: b waits behind it
    blocking.release.set()
    writer.join(10)
    second.join(10)
    assert flushed.is_set()
    assert blocking.calls == ["record_step_runs", "record_step_runs"]
    statuses = {s.id: s.status for s in store.step_runs(run_id)}
    assert statuses == {a: StepStatus.SUCCEEDED, b: StepStatus.SUCCEEDED, c: StepStatus.PENDING}
    store.dispose()


class Failing(Recording):
    """The store, whose next ``record_step_runs`` fails."""

    def __init__(self, store: SqlMetadataStore) -> None:
        super().__init__(store)
        self.fail = True

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name != "record_step_runs" or not self.fail:
            return call

        def failing(*args: Any, **kwargs: Any) -> Any:
            self.fail = False
            raise OSError("database is gone")

        return failing


def test_a_failed_write_is_noted_again_and_its_outcomes_still_stand(tmp_path: Path) -> None:
    store, run_id, (a, b, c) = _store(tmp_path)
    failing = Failing(store)
    journal = StepJournal(failing)  # type: ignore[arg-type]
    journal.start(StepStart(a, cache_key="k"))
    journal.finish(b, StepOutcome(StepStatus.SUCCEEDED))
    with pytest.raises(OSError, match="database is gone"):
        journal.flush()
    assert len(journal) == 2
    journal.finish(b, StepOutcome(StepStatus.FAILED, error="later"))  # the first one stands
    journal.finish(c, StepOutcome(StepStatus.SKIPPED, attempts=0))
    journal.flush()
    steps = {s.id: s for s in store.step_runs(run_id)}
    assert (steps[a].status, steps[a].cache_key) == (StepStatus.RUNNING, "k")
    assert steps[b].status is StepStatus.SUCCEEDED
    assert steps[c].status is StepStatus.SKIPPED
    store.dispose()


class Threads(Recording):
    """The store, with the thread each write was made in."""

    def __init__(self, store: SqlMetadataStore) -> None:
        super().__init__(store)
        self.threads: list[str] = []
        self.written = threading.Event()

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)

        def noted(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.current_thread().name)
            result = call(*args, **kwargs)
            self.written.set()
            return result

        return noted


def test_an_open_journal_that_fills_is_written_by_its_thread_at_once(tmp_path: Path) -> None:
    store, run_id, ids = _store(tmp_path)
    threads = Threads(store)
    journal = StepJournal(threads, seconds=60, entries=2)  # type: ignore[arg-type]
    journal.open()
    for step_run_id in ids[:2]:
        journal.finish(step_run_id, StepOutcome(StepStatus.SUCCEEDED))
    assert threads.written.wait(10)  # long before its 60 s clock
    assert threads.threads == ["qflow-journal"]
    journal.close()
    statuses = [s.status for s in store.step_runs(run_id)]
    assert statuses == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED, StepStatus.PENDING]
    store.dispose()
