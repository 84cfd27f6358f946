"""What a running step logs into: a per-step recorder held in a context variable.

Metrics are appended to an in-memory buffer (a few hundred nanoseconds each) and written in
batches, so logging stays fast at any rate. A batch is written when the buffer is large, by a
background thread every ``FLUSH_EVERY_SECONDS`` whatever the logging rate (a point logged is
in the store within about that time, so live charts, pruning and ``kill -9`` see it), and
always when the step ends, whether it succeeded or raised.

The same thread sends a running step's output so far (its captured stdout and stderr) when it
changed, at most every ``OUTPUT_EVERY_SECONDS`` and at most ``OUTPUT_MAX_CHARS`` of each (the
tail), so ``qflow logs`` and the dashboard show it live; the whole output is recorded when the
step ends.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

MetricRow = tuple[str, int | None, str, float, int | None, float]
"""(run_id, step_run_id, key, value, step index, timestamp)."""

FLUSH_EVERY_ROWS = 50_000
FLUSH_EVERY_SECONDS = 0.25
OUTPUT_EVERY_SECONDS = 0.5
OUTPUT_MAX_CHARS = 1_000_000
"""A live output update carries at most this many characters of each stream (a tracking
server takes no more); the full output is recorded when the step ends."""


@dataclass
class RunSinks:
    """Where a step's records go: the coordinator's store calls, or a worker's channel."""

    metrics: Callable[[list[MetricRow]], None]
    params: Callable[[str, int | None, Mapping[str, Any]], None]
    tags: Callable[[str, Mapping[str, str]], None]
    artifact: Callable[[str, int | None, str, Any], None]
    output: Callable[[int, str, str], None] | None = None
    """A running step's ``(step_run_id, stdout, stderr)`` so far; None: output is recorded
    only when the step ends."""


@dataclass(eq=False)
class StepRecorder:
    """Collects what one step run logs; ``open`` it while the step runs, ``close`` at the end."""

    run_id: str
    step_run_id: int | None
    step_name: str
    sinks: RunSinks
    buffer: list[MetricRow] = field(default_factory=list)
    """Never replaced, only appended to and trimmed from the front, so the logging thread
    needs no lock: a flush takes the first ``n`` rows and deletes exactly those."""
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    stop: BaseException | None = None
    """Raised by the step's next ``add_metric``: a cooperative stop asked by another thread
    (see ``stop_run``)."""
    streams: tuple[io.StringIO, io.StringIO] | None = None
    """The step's captured stdout and stderr, sent through ``sinks.output`` while it runs."""
    _output_sent: tuple[int, int] = (0, 0)
    _output_at: float = 0.0

    def add_metric(self, key: str, value: float, step: int | None, timestamp: float) -> None:
        if self.stop is not None:
            raise self.stop
        buffer = self.buffer
        buffer.append((self.run_id, self.step_run_id, key, value, step, timestamp))
        if len(buffer) >= FLUSH_EVERY_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered; batches reach the sink in the order they were logged.
        Rows stay buffered until the sink has taken them, so an empty buffer has nothing
        left to write (a step that logs nothing never takes the lock)."""
        if not self.buffer:
            return
        with self._write_lock:
            count = len(self.buffer)
            if not count:
                return
            self.sinks.metrics(self.buffer[:count])
            del self.buffer[:count]

    def flush_output(self, now: float) -> None:
        """Send the output so far if it grew and the last send is ``OUTPUT_EVERY_SECONDS``
        old; only the flusher thread calls this, so sends never overlap."""
        send, streams = self.sinks.output, self.streams
        if send is None or streams is None or self.step_run_id is None:
            return
        if now - self._output_at < OUTPUT_EVERY_SECONDS:
            return
        sizes = (streams[0].tell(), streams[1].tell())
        if sizes == self._output_sent:
            return
        self._output_at = now
        send(self.step_run_id, _tail(streams[0].getvalue()), _tail(streams[1].getvalue()))
        self._output_sent = sizes

    def open(self) -> None:
        _FLUSHER.watch(self)

    def close(self) -> None:
        _FLUSHER.forget(self)
        self.flush()


class _Flusher:
    """One daemon thread per process that flushes the open recorders on a clock."""

    def __init__(self) -> None:
        self._recorders: set[StepRecorder] = set()
        """Open recorders; every ``open`` is followed by a ``close`` in a ``finally``."""
        self._lock = threading.Lock()
        self._pid = 0
        """The process whose thread runs the loop; 0 before the first use and in a forked
        child, where that thread does not exist."""
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._recorders = set()
        self._pid = 0

    def watch(self, recorder: StepRecorder) -> None:
        with self._lock:
            self._recorders.add(recorder)
            if not self._pid:  # first use, or a forked worker: start our thread
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="qflow-metrics", daemon=True).start()

    def open_recorders(self) -> list[StepRecorder]:
        with self._lock:
            return list(self._recorders)

    def forget(self, recorder: StepRecorder) -> None:
        with self._lock:
            self._recorders.discard(recorder)

    def _loop(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(FLUSH_EVERY_SECONDS)
            for recorder in self.open_recorders():
                try:
                    recorder.flush()
                    recorder.flush_output(time.monotonic())
                except Exception:  # kept in the buffer; the step's last flush reports it
                    continue


_FLUSHER = _Flusher()


def _tail(text: str) -> str:
    """``text``, or its last ``OUTPUT_MAX_CHARS`` characters under a line saying so."""
    if len(text) <= OUTPUT_MAX_CHARS:
        return text
    kept = text[len(text) - OUTPUT_MAX_CHARS + 100 :]  # room for the line
    left_out = len(text) - len(kept)
    return f"[qflow] {left_out} earlier characters left out until the step ends\n{kept}"


def stop_run(run_id: str, error: BaseException) -> bool:
    """Make the next ``qf.log_metric`` of every step of ``run_id`` running in this process
    raise ``error``; False if none runs here. For observers on other threads (a sweep's
    pruner) that must stop a step between two of its logged values."""
    stopped = False
    for recorder in _FLUSHER.open_recorders():
        if recorder.run_id == run_id:
            recorder.stop = error
            stopped = True
    return stopped


current_recorder: ContextVar[StepRecorder | None] = ContextVar("qflow_recorder", default=None)
