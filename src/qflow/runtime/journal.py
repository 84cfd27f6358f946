"""Step-run starts and finishes on their way to the metadata store, written in batches.

Recording each mapped item's start and finish in its own transaction made the store the
bottleneck of a large map (two commits per item: 20,000 for 10,000 items). The scheduler
notes them here instead, and the journal writes what it holds in one ``record_step_runs``
call: from its own thread once the oldest entry is ``FLUSH_SECONDS`` old (even while a step
runs in the coordinator, on the local executor) or it holds ``FLUSH_ENTRIES``, and whenever
the scheduler needs the store to be current (before a hook hears of a step, when a map or
the run ends, on an interrupt). The scheduler writes itself only when the journal outgrows
its thread (``BACKLOG_ENTRIES``), which keeps memory bounded when the store is slow.

What a ``kill -9`` can lose is therefore about the last ``FLUSH_SECONDS`` of finished items:
their step runs stay open, ``mark_crashed_runs`` closes them, and ``qflow resume`` runs them
again.
Nothing is ever recorded finished that did not finish, and the files a step read are written
before its finish, so no step run is ever reusable without the reads that decide its cache
hits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import DataFileRecord, StepOutcome, StepStart

FLUSH_SECONDS = 0.25
"""The longest a noted start or finish waits for its write."""
FLUSH_ENTRIES = 1000
"""Starts and finishes that make the journal's thread write at once."""
BACKLOG_ENTRIES = 8 * FLUSH_ENTRIES
"""Starts and finishes that make the thread noting one more write them itself."""


class StepJournal:
    """Starts, finishes and read files of step runs, written together in batches. Safe to use
    from several threads; ``open`` starts the thread that writes on time, ``close`` ends it
    and writes the rest."""

    def __init__(
        self,
        metadata: MetadataStore,
        *,
        seconds: float = FLUSH_SECONDS,
        entries: int = FLUSH_ENTRIES,
    ) -> None:
        self.metadata = metadata
        self.seconds = seconds
        self.entries = entries
        self._started: dict[int, StepStart] = {}
        self._finished: dict[int, StepOutcome] = {}
        self._files: list[tuple[int, Sequence[DataFileRecord]]] = []
        self._oldest: float | None = None
        self._lock = threading.RLock()
        """Guards the entries; held only to note or take them, never while writing."""
        self._writing = threading.Lock()
        """Held while entries are written: writes never overlap, and a flush returns only
        once what was noted before it is in the store."""
        self._closed = threading.Event()
        self._due = threading.Event()
        """Set when the thread should write before its clock says so (full, or closing)."""
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._started) + len(self._finished)

    def open(self) -> None:
        self._closed.clear()
        self._due.clear()
        self._thread = threading.Thread(target=self._loop, name="qflow-journal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the writing thread, then write what is left (raising what that raises)."""
        self._closed.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def start(self, start: StepStart) -> None:
        with self._lock:
            self._started[start.step_run_id] = start
            self._note()
        self._write_if_full()

    def finish(
        self, step_run_id: int, outcome: StepOutcome, files: Sequence[DataFileRecord] = ()
    ) -> None:
        """Note a step run's outcome (the first one noted stands, as in the store) and the
        files it read."""
        with self._lock:
            self._finished.setdefault(step_run_id, outcome)
            if files:
                self._files.append((step_run_id, files))
            self._note()
        self._write_if_full()

    def files(self, step_run_id: int, files: Sequence[DataFileRecord]) -> None:
        if files:
            with self._lock:
                self._files.append((step_run_id, files))
                self._note()
            self._write_if_full()

    def flush(self) -> None:
        """Write everything noted: the read files first, then starts and finishes in one
        transaction (a start whose finish is noted too is written as part of the finish).
        The entries are taken out under the lock and written outside it, so the scheduler
        notes the next ones while this write runs. What fails to be written is noted again,
        for the next flush (an outcome noted since then does not replace it)."""
        with self._writing:
            with self._lock:
                if self._oldest is None:
                    return
                noted = (self._started, self._finished, self._files, self._oldest)
                self._started, self._finished, self._files = {}, {}, []
                self._oldest = None
            started, finished, files, oldest = noted
            try:
                for step_run_id, records in files:
                    self.metadata.record_data_files(step_run_id, records)
                files = []
                starts = [s for i, s in started.items() if i not in finished]
                ends = [(i, _merged(o, started.get(i))) for i, o in finished.items()]
                if starts or ends:
                    self.metadata.record_step_runs(starts, ends)
            except BaseException:
                with self._lock:
                    self._started = {**started, **self._started}
                    self._finished = {**self._finished, **finished}
                    self._files = files + self._files
                    self._oldest = min(oldest, self._oldest or oldest)
                raise

    def _note(self) -> None:
        """An entry was added (lock held): the clock of the oldest one starts."""
        if self._oldest is None:
            self._oldest = time.monotonic()

    def _write_if_full(self) -> None:
        """A journal holding ``entries`` is written at once: by its thread, or by the one
        noting when there is no thread or it falls behind."""
        size = len(self)
        if size < self.entries:
            return
        if self._thread is None or size >= BACKLOG_ENTRIES:
            self.flush()
        else:
            self._due.set()

    def _loop(self) -> None:
        """Write what has waited ``seconds``. A failing write is left to the scheduler's next
        flush, which raises it where the run can end on it; this thread tries again after
        ``seconds``."""
        delay = self.seconds
        while True:
            self._due.wait(delay)
            if self._closed.is_set():
                return
            due, delay = self._due.is_set(), self.seconds
            self._due.clear()
            with self._lock:
                oldest = self._oldest
            if oldest is None:
                continue
            if not due and time.monotonic() - oldest < self.seconds:
                delay = oldest + self.seconds - time.monotonic()
                continue
            with contextlib.suppress(Exception):
                self.flush()


def _merged(outcome: StepOutcome, start: StepStart | None) -> StepOutcome:
    """The outcome, with what its start recorded where the outcome has nothing."""
    if start is None:
        return outcome
    return dataclasses.replace(
        outcome,
        started_at=outcome.started_at if outcome.started_at is not None else start.started_at,
        cache_key=outcome.cache_key or start.cache_key,
        fingerprint=outcome.fingerprint or start.fingerprint,
        reason=outcome.reason or start.reason,
    )
