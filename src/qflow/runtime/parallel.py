"""Run steps in a pool of worker processes on this machine.

Workers are forked when the run starts, so they inherit the traced workflow (steps defined
anywhere, even inside functions, work without pickling code). A task message names the step
call and its input artifacts; the worker reads inputs from the artifact store, runs the step,
writes outputs there, and sends back only metadata: output refs, logged metrics and params,
stdout/stderr and status. The coordinator alone writes the metadata store.

A worker runs one task at a time. Short mapped items (of a step whose calls are measured to
take under ``QUEUE_SECONDS``) travel in batches: while the workers are busy, waiting items of
one step gather in the backlog, and a worker's next message takes up to ``BATCH_SECONDS`` of
them (by their measured time); the worker sends their results back together, at least every
``BATCH_SECONDS``. A worker holds at most ``QUEUE_BATCHES`` messages of short items, the one
it runs and the next, so it never idles while the coordinator records the last results. Trivial
items then cost one message each way per batch instead of per item; an idle pool still gets
single items at once. Other tasks, and any with a ``timeout``, go alone to an idle worker.

A worker that dies (crash, OOM kill, segfault) fails the task it was running (each worker
marks the task it runs in memory the coordinator reads) with a clear error, is replaced, and
the step's retry policy decides what happens next; the other tasks it held, run or not but
not yet reported, go to other workers as they were. A step that overruns its timeout is
interrupted inside the worker; one that does not return soon after is killed with its worker.
Workers end by themselves when the coordinator dies, even by ``kill -9``: no orphans.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.errors import QFlowError
from qflow.runtime.capture import LinePrefixer
from qflow.runtime.context import RunSinks
from qflow.runtime.lifeline import end_with_parent
from qflow.runtime.mapping import item_name
from qflow.runtime.task import StepTable, StepTask, TaskResult
from qflow.runtime.worker import execute
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue, SimpleQueue
    from multiprocessing.sharedctypes import Synchronized

    from qflow.store.artifacts import ArtifactStore

KILL_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05
QUEUE_SECONDS = 0.05
"""Tasks of a step whose calls take less than this (a moving average) may queue at a busy
worker, in batches."""
QUEUE_BATCHES = 2
"""The most messages of short tasks one worker holds: the batch it runs and the next."""
BATCH_SECONDS = 0.05
"""About how long one batch of short tasks runs, and how often a worker reports results."""
MAX_BATCH = 256
"""The most tasks in one batch."""


@dataclass
class _Slot:
    """One worker process and the tasks it holds, by message (a batch), in order: the
    first message's unreported tasks run now or next, the others wait in its inbox."""

    process: BaseProcess
    inbox: SimpleQueue[Any]
    """Written in the coordinator's own thread (no feeder thread to wake per message); it
    never fills, as a worker holds at most ``QUEUE_BATCHES`` messages."""
    running: Synchronized[int]
    """The task the worker runs (-1 between tasks), written by the worker: who to blame
    when it dies."""
    batches: deque[list[int]] = field(default_factory=deque)
    started: float = 0.0
    """When its current message started (about: when it was sent, or the one before it
    was reported)."""
    deadline: float | None = None

    def tasks(self) -> list[int]:
        return [task_id for batch in self.batches for task_id in batch]


@dataclass
class _Pending:
    task: StepTask
    future: Future[TaskResult] = field(default_factory=Future)
    attempts_used: int = 0


def _signal_name(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _worker_main(
    inbox: SimpleQueue[Any],
    outbox: Queue[Any],
    artifacts: ArtifactStore,
    parent: int,
    steps: StepTable,
    running: Synchronized[int],
) -> None:
    """Loop in a worker: take a message of tasks (each step travels by key in ``steps``, the
    run's step table this worker was forked with), run them in order, send their metadata
    back: when the message is done, and every ``BATCH_SECONDS`` while it runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    end_with_parent(parent)

    def metrics(rows: list[Any]) -> None:
        outbox.put(("metrics", rows))

    def params(run_id: str, step_run_id: int | None, values: Any) -> None:
        outbox.put(("params", run_id, step_run_id, dict(values)))

    def tags(run_id: str, values: Any) -> None:
        outbox.put(("tags", run_id, dict(values)))

    def artifact(run_id: str, step_run_id: int | None, name: str, source: Any) -> None:
        ref = (
            artifacts.put_bytes(source) if isinstance(source, bytes) else artifacts.put_path(source)
        )
        outbox.put(("artifact", run_id, step_run_id, name, ref))

    def output(step_run_id: int, stdout: str, stderr: str) -> None:
        outbox.put(("output", step_run_id, stdout, stderr))

    sinks = RunSinks(metrics, params, tags, artifact, output)
    out, err = LinePrefixer(sys.stdout), LinePrefixer(sys.stderr)
    sys.stdout, sys.stderr = out, err
    report = _Report(outbox)
    while True:
        message = inbox.get()
        if message is None:
            return
        for task_id, sent in message:
            task = steps.task(sent)
            label = task.node.name if task.item is None else item_name(task.node.name, task.item)
            out.label = err.label = label
            running.value = task_id
            try:
                result = execute(task, artifacts, sinks)
            finally:
                running.value = -1
                with contextlib.suppress(OSError, ValueError):  # a closed terminal ends the echo
                    out.flush()
                    err.flush()
            report.add(task_id, result)
        report.send()


class _Report:
    """A worker's finished tasks on their way to the coordinator: sent together when the
    message ends, and by a thread every ``BATCH_SECONDS`` in between, so a task that runs
    long never holds back the results of those finished before it."""

    def __init__(self, outbox: Queue[Any]) -> None:
        self._outbox = outbox
        self._done: list[tuple[int, TaskResult]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, name="qflow-report", daemon=True).start()

    def add(self, task_id: int, result: TaskResult) -> None:
        with self._lock:
            self._done.append((task_id, result))

    def send(self) -> None:
        """Send what finished, in order (the lock keeps the two senders' messages in order)."""
        with self._lock:
            if self._done:
                self._outbox.put(("done", self._done))
                self._done = []

    def _loop(self) -> None:
        while True:
            time.sleep(BATCH_SECONDS)
            self.send()


class ParallelExecutor:
    """Runs independent steps and mapped items at once in ``workers`` processes."""

    name = "parallel"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise QFlowError(f"--workers must be at least 1, got {workers}.")
        self.workers = workers or os.cpu_count() or 1
        self._context = multiprocessing.get_context("fork")
        self._slots: list[_Slot] = []
        self._outbox: Queue[Any] | None = None
        self._pending: dict[int, _Pending] = {}
        self._backlog: deque[int] = deque()
        self._ids = itertools.count()
        self._artifacts: ArtifactStore | None = None
        self._sinks: RunSinks | None = None
        self._lock = threading.Lock()
        self._pump: threading.Thread | None = None
        self._stopping = threading.Event()
        self._steps = StepTable()
        self._seconds: dict[str, float] = {}
        """Measured time of one call, by node (a moving average)."""

    def bind_steps(self, steps: StepTable) -> None:
        """The run's steps, for the workers ``start`` forks: tasks reach them as keys."""
        self._steps = steps

    def start(self, artifacts: ArtifactStore, sinks: RunSinks) -> None:
        self._artifacts, self._sinks = artifacts, sinks
        self._outbox = self._context.Queue()
        self._slots = [self._spawn() for _ in range(self.workers)]
        self._stopping.clear()
        self._pump = threading.Thread(target=self._pump_loop, name="qflow-results", daemon=True)
        self._pump.start()

    def _spawn(self) -> _Slot:
        inbox: SimpleQueue[Any] = self._context.SimpleQueue()
        running = self._context.Value("q", -1, lock=False)
        process = self._context.Process(
            target=_worker_main,
            args=(inbox, self._outbox, self._artifacts, os.getpid(), self._steps, running),
            daemon=True,
        )
        process.start()
        return _Slot(process, inbox, running)

    def can_submit(self) -> bool:
        """A backlog shorter than what the workers' next messages take (a batch each, of its
        first task's step): tasks wait there, in order, for a worker that takes them, and
        short ones gather into batches; the scheduler's next task waits otherwise."""
        with self._lock:
            if not self._backlog:
                return True
            return len(self._backlog) < self.workers * self._batch_size(self._backlog[0])

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if self._outbox is None:
            raise QFlowError("ParallelExecutor.submit() called before start().")
        pending = _Pending(task)
        task_id = next(self._ids)
        with self._lock:
            self._pending[task_id] = pending
            self._backlog.append(task_id)
            self._dispatch_backlog()
        return pending.future

    def _short(self, task_id: int) -> bool:
        """Whether a task may wait at a busy worker, in a batch: a mapped item without a
        timeout, of a step measured to be quick. Other steps keep the order a free worker
        gives them."""
        task = self._pending[task_id].task
        seconds = self._seconds.get(task.node.name)
        return (
            task.item is not None
            and task.step.options.timeout is None
            and seconds is not None
            and seconds < QUEUE_SECONDS
        )

    def _batch_size(self, task_id: int) -> int:
        """How many tasks of ``task_id``'s step one message carries: about ``BATCH_SECONDS``
        of their measured time for short ones, else one."""
        if not self._short(task_id):
            return 1
        seconds = self._seconds[self._pending[task_id].task.node.name]
        return max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(seconds, 1e-5))))

    def _queues(self, slot: _Slot) -> bool:
        """Whether a busy worker takes one more message of short tasks (lock held): a
        message holds one task or short ones only, so its first tells."""
        return len(slot.batches) < QUEUE_BATCHES and self._short(slot.batches[-1][0])

    def _dispatch_backlog(self) -> None:
        """Send waiting tasks, in order, while workers take them (lock held): the first to an
        idle worker, or a short one with the short ones of its step right behind it, as one
        message, to the least busy worker that queues."""
        while self._backlog:
            first = self._backlog[0]
            slot = next((s for s in self._slots if not s.batches), None)
            if slot is None and self._short(first):
                queueing = [s for s in self._slots if self._queues(s)]
                slot = min(queueing, key=lambda s: len(s.batches), default=None)
            if slot is None:
                return
            batch = [self._backlog.popleft()]
            node = self._pending[first].task.node.name
            size = self._batch_size(first)
            while (
                len(batch) < size
                and self._backlog
                and self._pending[self._backlog[0]].task.node.name == node
                and self._short(self._backlog[0])
            ):
                batch.append(self._backlog.popleft())
            self._send(slot, batch)

    def _send(self, slot: _Slot, batch: list[int]) -> None:
        """One message of tasks to ``slot``'s worker (lock held)."""
        if not slot.batches:
            self._begin(slot, self._pending[batch[0]].task)
        slot.batches.append(batch)
        message = [(task_id, self._steps.message(self._pending[task_id].task)) for task_id in batch]
        with contextlib.suppress(OSError):  # a dead worker: _check_workers takes its tasks back
            slot.inbox.put(message)

    def _begin(self, slot: _Slot, task: StepTask) -> None:
        """``slot``'s worker now runs the message starting with ``task``: its clock starts
        (a task with a timeout is alone in its message)."""
        timeout = task.step.options.timeout
        slot.started = time.monotonic()
        slot.deadline = (
            slot.started + float(timeout) + KILL_GRACE_SECONDS
            if isinstance(timeout, int | float)
            else None
        )

    def _pump_loop(self) -> None:
        """Drain worker messages; every ``_POLL_SECONDS``, watch for dead or overrunning
        workers (not after every message: a map's items send thousands)."""
        checked = time.monotonic()
        while not self._stopping.is_set():
            try:
                message = self._outbox.get(timeout=_POLL_SECONDS) if self._outbox else None
            except queue.Empty:
                message = None
            except (EOFError, OSError):
                return
            if message is not None:
                self._handle(message)
            if message is None or time.monotonic() - checked >= _POLL_SECONDS:
                self._check_workers()
                checked = time.monotonic()

    def _handle(self, message: tuple[Any, ...]) -> None:
        sinks = self._sinks
        if sinks is None:
            return
        kind = message[0]
        if kind == "metrics":
            sinks.metrics(message[1])
        elif kind == "params":
            sinks.params(message[1], message[2], message[3])
        elif kind == "tags":
            sinks.tags(message[1], message[2])
        elif kind == "artifact":
            sinks.artifact(message[1], message[2], message[3], message[4])
        elif kind == "output" and sinks.output is not None:
            sinks.output(message[1], message[2], message[3])
        elif kind == "done":
            self._finish(message[1])

    def _finish(self, results: list[tuple[int, TaskResult]]) -> None:
        """Tasks a worker reported: off its slot, their futures resolved, the workers given
        more."""
        done = []
        with self._lock:
            reported = {task_id for task_id, _ in results}
            for slot in self._slots:
                if not slot.batches or slot.batches[0][0] not in reported:
                    continue
                while slot.batches:  # a worker reports in order: its first messages end
                    batch = [t for t in slot.batches[0] if t not in reported]
                    if batch:
                        slot.batches[0] = batch
                        break
                    slot.batches.popleft()
                    if slot.batches:
                        self._begin(slot, self._pending[slot.batches[0][0]].task)
                    else:
                        slot.deadline = None
            for task_id, result in results:
                pending = self._pending.pop(task_id, None)
                if pending is None:
                    continue
                name = pending.task.node.name
                took = max(result.ended_at - result.started_at, 0.0)
                self._seconds[name] = 0.7 * self._seconds.get(name, took) + 0.3 * took
                result.attempts += pending.attempts_used
                done.append((pending, result))
            self._dispatch_backlog()
        for pending, result in done:
            pending.future.set_result(result)

    def _check_workers(self) -> None:
        now = time.monotonic()
        with self._lock:
            lost = [
                index
                for index, slot in enumerate(self._slots)
                if not slot.process.is_alive()
                or (slot.deadline is not None and now > slot.deadline)
            ]
        if not lost:
            return
        self._drain()  # what a worker sent before it died is its own, not lost
        with self._lock:
            for index in lost:
                slot = self._slots[index]
                overran = slot.deadline is not None and now > slot.deadline
                if overran:
                    slot.process.kill()
                    slot.process.join(1)
                code = slot.process.exitcode
                self._slots[index] = self._spawn()
                held = slot.tasks()
                if held:
                    running = slot.running.value if slot.running.value in held else held[0]
                    held.remove(running)
                    self._backlog.extendleft(reversed(held))  # first in line, as they were
                    self._worker_lost(running, slot, code, overran, now)
            self._dispatch_backlog()

    def _drain(self) -> None:
        """Handle every message already in the outbox."""
        while self._outbox is not None:
            try:
                message = self._outbox.get_nowait()
            except queue.Empty:
                return
            except (EOFError, OSError):
                return
            self._handle(message)

    def _worker_lost(
        self, task_id: int, slot: _Slot, code: int | None, overran: bool, now: float
    ) -> None:
        """Retry the task if its policy allows, else fail it (lock held)."""
        pending = self._pending[task_id]
        options = pending.task.step.options
        pending.attempts_used += 1
        if overran:
            error = (
                f"TimeoutError: step {pending.task.node.name} did not stop at its timeout; killed"
            )
        else:
            error = (
                f"WorkerDiedError: the worker process running {pending.task.node.name} died "
                f"({_signal_name(code)}), for example killed for lack of memory or crashed in "
                "native code"
            )
        if pending.attempts_used <= options.retries:
            self._backlog.appendleft(task_id)
            return
        del self._pending[task_id]
        pending.future.set_result(
            TaskResult(
                pending.task.step_run_id,
                StepStatus.FAILED,
                {},
                time.time() - (now - slot.started),
                time.time(),
                pending.attempts_used,
                error=error,
            )
        )

    def shutdown(self) -> None:
        self._stopping.set()
        if self._pump is not None:
            self._pump.join(5)
        for slot in self._slots:
            if slot.batches or not slot.process.is_alive():
                slot.process.kill()
            else:
                with contextlib.suppress(OSError):
                    slot.inbox.put(None)
        for slot in self._slots:
            slot.process.join(5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(1)
        self._slots = []
        self._pending.clear()
        self._backlog.clear()
        self._sinks = None
