"""Step-run starts and finishes on their way to the metadata store, written in batches.

Recording each mapped item's start and finish in its own transaction made the store the
bottleneck of a large map (two commits per item: 20,000 for 10,000 items). The scheduler
notes them here instead, and the journal writes what it holds in one ``record_step_runs``
call when its oldest entry is ``FLUSH_SECONDS`` old, when it holds ``FLUSH_ENTRIES``, and
whenever the scheduler needs the store to be current (before a hook hears of a step, when a
map or the run ends, on an interrupt).

What a ``kill -9`` can lose is therefore the last ``FLUSH_SECONDS`` of finished items: their
step runs stay open, ``mark_crashed_runs`` closes them, and ``qflow resume`` runs them again.
Nothing is ever recorded finished that did not finish, and the files a step read are written
before its finish, so no step run is ever reusable without the reads that decide its cache
hits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import DataFileRecord, StepOutcome, StepStart

FLUSH_SECONDS = 0.25
"""The longest a noted start or finish waits for its write."""
FLUSH_ENTRIES = 1000
"""The most starts and finishes one write carries."""


class StepJournal:
    """Starts, finishes and read files of step runs, written together in batches."""

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

    def __len__(self) -> int:
        return len(self._started) + len(self._finished)

    def start(self, start: StepStart) -> None:
        self._note()
        self._started[start.step_run_id] = start

    def finish(
        self, step_run_id: int, outcome: StepOutcome, files: Sequence[DataFileRecord] = ()
    ) -> None:
        """Note a step run's outcome (the first one noted stands, as in the store) and the
        files it read."""
        self._note()
        self._finished.setdefault(step_run_id, outcome)
        self.files(step_run_id, files)

    def files(self, step_run_id: int, files: Sequence[DataFileRecord]) -> None:
        if files:
            self._note()
            self._files.append((step_run_id, files))

    def due_in(self) -> float | None:
        """Seconds until the next write is due (0: now); None when nothing waits."""
        if self._oldest is None:
            return None
        return max(0.0, self._oldest + self.seconds - time.monotonic())

    def flush_if_due(self) -> None:
        if self.due_in() == 0.0 or len(self) >= self.entries:
            self.flush()

    def flush(self) -> None:
        """Write everything noted: the read files first, then starts and finishes in one
        transaction (a start whose finish is noted too is part of the finish). What fails to
        be written stays noted, for the next flush."""
        if self._oldest is None:
            return
        for step_run_id, files in self._files:
            self.metadata.record_data_files(step_run_id, files)
        self._files.clear()
        started = [s for i, s in self._started.items() if i not in self._finished]
        if started or self._finished:
            self.metadata.record_step_runs(started, list(self._finished.items()))
        self._started.clear()
        self._finished.clear()
        self._oldest = None

    def _note(self) -> None:
        if self._oldest is None:
            self._oldest = time.monotonic()
        elif len(self) >= self.entries or time.monotonic() - self._oldest >= self.seconds:
            self.flush()
            self._oldest = time.monotonic()
