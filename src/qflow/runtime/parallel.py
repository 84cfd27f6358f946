"""Run steps in a pool of worker processes on this machine.

Workers are forked when the run starts, so they inherit the traced workflow (steps defined
anywhere, even inside functions, work without pickling code). A task message names the step
call and its input artifacts; the worker reads inputs from the artifact store, runs the step,
writes outputs there, and sends back only metadata: output refs, logged metrics and params,
stdout/stderr and status. The coordinator alone writes the metadata store.

A worker that dies (crash, OOM kill, segfault) fails its task with a clear error, is replaced,
and the step's retry policy decides what happens next. A step that overruns its timeout is
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
    from multiprocessing.queues import Queue

    from qflow.store.artifacts import ArtifactStore

KILL_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05


@dataclass
class _Slot:
    """One worker process and the task it is running."""

    process: BaseProcess
    inbox: Queue[Any]
    task_id: int | None = None
    started: float = 0.0
    deadline: float | None = None


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
    inbox: Queue[Any], outbox: Queue[Any], artifacts: ArtifactStore, parent: int, steps: StepTable
) -> None:
    """Loop in a worker: take a task (its step travels by key in ``steps``, the run's step
    table this worker was forked with), run it, send metadata back."""
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

    sinks = RunSinks(metrics, params, tags, artifact)
    out, err = LinePrefixer(sys.stdout), LinePrefixer(sys.stderr)
    sys.stdout, sys.stderr = out, err
    while True:
        message = inbox.get()
        if message is None:
            return
        task_id, sent = message
        task = steps.task(sent)
        label = task.node.name if task.item is None else item_name(task.node.name, task.item)
        out.label = err.label = label
        try:
            result = execute(task, artifacts, sinks)
        finally:
            with contextlib.suppress(OSError, ValueError):  # a closed terminal ends the echo
                out.flush()
                err.flush()
        outbox.put(("done", task_id, result))


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
        inbox: Queue[Any] = self._context.Queue()
        process = self._context.Process(
            target=_worker_main,
            args=(inbox, self._outbox, self._artifacts, os.getpid(), self._steps),
            daemon=True,
        )
        process.start()
        return _Slot(process, inbox)

    def can_submit(self) -> bool:
        with self._lock:
            return not self._backlog and any(slot.task_id is None for slot in self._slots)

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if self._outbox is None:
            raise QFlowError("ParallelExecutor.submit() called before start().")
        pending = _Pending(task)
        task_id = next(self._ids)
        with self._lock:
            self._pending[task_id] = pending
            self._dispatch(task_id)
        return pending.future

    def _dispatch(self, task_id: int) -> None:
        """Hand a task to a free worker, or queue it until one is free (lock held)."""
        pending = self._pending[task_id]
        slot = next((s for s in self._slots if s.task_id is None), None)
        if slot is None:
            self._backlog.append(task_id)
            return
        timeout = pending.task.step.options.timeout
        slot.task_id = task_id
        slot.started = time.monotonic()
        slot.deadline = (
            slot.started + float(timeout) + KILL_GRACE_SECONDS
            if isinstance(timeout, int | float)
            else None
        )
        slot.inbox.put((task_id, self._steps.message(pending.task)))

    def _pump_loop(self) -> None:
        """Drain worker messages; watch for dead or overrunning workers."""
        while not self._stopping.is_set():
            try:
                message = self._outbox.get(timeout=_POLL_SECONDS) if self._outbox else None
            except queue.Empty:
                message = None
            except (EOFError, OSError):
                return
            if message is not None:
                self._handle(message)
            self._check_workers()

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
        elif kind == "done":
            self._finish(message[1], message[2])

    def _finish(self, task_id: int, result: TaskResult) -> None:
        with self._lock:
            for slot in self._slots:
                if slot.task_id == task_id:
                    slot.task_id = None
            pending = self._pending.pop(task_id, None)
            if self._backlog:
                self._dispatch(self._backlog.popleft())
        if pending is not None:
            result.attempts += pending.attempts_used
            pending.future.set_result(result)

    def _check_workers(self) -> None:
        now = time.monotonic()
        with self._lock:
            for index, slot in enumerate(self._slots):
                overran = slot.deadline is not None and now > slot.deadline
                if slot.process.is_alive() and not overran:
                    continue
                if overran:
                    slot.process.kill()
                    slot.process.join(1)
                task_id = slot.task_id
                code = slot.process.exitcode
                self._slots[index] = self._spawn()
                if task_id is not None:
                    self._worker_lost(task_id, slot, code, overran, now)
                elif self._backlog:
                    self._dispatch(self._backlog.popleft())

    def _worker_lost(
        self, task_id: int, slot: _Slot, code: int | None, overran: bool, now: float
    ) -> None:
        """Retry the task on a fresh worker if its policy allows, else fail it (lock held)."""
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
            self._dispatch(task_id)
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
            if slot.task_id is not None or not slot.process.is_alive():
                slot.process.kill()
            else:
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
