"""Executors run step tasks. The interface is four methods, as in Hamilton's TaskExecutor."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

from qflow.errors import QFlowError
from qflow.runtime.worker import execute

if TYPE_CHECKING:
    from qflow.runtime.context import RunSinks
    from qflow.runtime.task import StepTask, TaskResult
    from qflow.store.artifacts import ArtifactStore


class Executor(Protocol):
    """Runs tasks; only the coordinator (the scheduler) writes the metadata store."""

    name: str

    def start(self, artifacts: ArtifactStore, sinks: RunSinks) -> None: ...

    def submit(self, task: StepTask) -> Future[TaskResult]: ...

    def can_submit(self) -> bool: ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """Runs each task in this process, one at a time, as it is submitted: the easiest to
    debug (breakpoints work). Each result is ready when ``submit`` returns, and the scheduler
    records it before it submits anything else."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        """``workers`` is accepted (an executor config may set it) and ignored: one at a time."""
        self._artifacts: ArtifactStore | None = None
        self._sinks: RunSinks | None = None

    def start(self, artifacts: ArtifactStore, sinks: RunSinks) -> None:
        self._artifacts, self._sinks = artifacts, sinks

    def submit(self, task: StepTask) -> Future[TaskResult]:
        if self._artifacts is None or self._sinks is None:
            raise QFlowError("LocalExecutor.submit() called before start().")
        future: Future[TaskResult] = Future()
        future.set_result(execute(task, self._artifacts, self._sinks))
        return future

    def can_submit(self) -> bool:
        return True

    def shutdown(self) -> None:
        self._artifacts = self._sinks = None


def create_executor(name: str, **options: object) -> Executor:
    """The executor ``name`` from the plugin registry (``local``, ``parallel``, ``ray`` or a
    plugin's), built with ``options``; an unknown name lists the known ones."""
    from qflow.plugins.registry import plugin_registry

    executor: Executor = plugin_registry().create("executors", name, options)
    return executor
