"""What a running step logs into: a per-step recorder held in a context variable.

Metrics are appended to an in-memory buffer (a few hundred nanoseconds each) and written in
batches: when the buffer is large, at least every second, and always when the step ends,
whether it succeeded or raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

MetricRow = tuple[str, int | None, str, float, int | None, float]
"""(run_id, step_run_id, key, value, step index, timestamp)."""

FLUSH_EVERY_ROWS = 50_000
FLUSH_EVERY_SECONDS = 1.0
_CHECK_CLOCK_EVERY = 1024


@dataclass
class RunSinks:
    """Where a step's records go: the coordinator's store calls, or a worker's channel."""

    metrics: Callable[[list[MetricRow]], None]
    params: Callable[[str, int | None, Mapping[str, Any]], None]
    tags: Callable[[str, Mapping[str, str]], None]
    artifact: Callable[[str, int | None, str, Any], None]


@dataclass
class StepRecorder:
    """Collects what one step run logs."""

    run_id: str
    step_run_id: int | None
    step_name: str
    sinks: RunSinks
    buffer: list[MetricRow] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)

    def add_metric(self, key: str, value: float, step: int | None, timestamp: float) -> None:
        buffer = self.buffer
        buffer.append((self.run_id, self.step_run_id, key, value, step, timestamp))
        size = len(buffer)
        if size >= FLUSH_EVERY_ROWS or (
            size % _CHECK_CLOCK_EVERY == 0
            and time.monotonic() - self._last_flush > FLUSH_EVERY_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            rows, self.buffer = self.buffer, []
            self.sinks.metrics(rows)
        self._last_flush = time.monotonic()


current_recorder: ContextVar[StepRecorder | None] = ContextVar("qflow_recorder", default=None)
