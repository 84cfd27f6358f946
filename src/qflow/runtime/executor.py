"""Executors run step tasks. The interface is four methods, as in Hamilton's TaskExecutor."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

from qflow.errors import QFlowError, did_you_mean
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

    def __init__(self) -> None:
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


def _parallel(**options: object) -> Executor:
    from qflow.runtime.parallel import ParallelExecutor

    return ParallelExecutor(**options)  # type: ignore[arg-type]


def _ray(**options: object) -> Executor:
    from qflow.runtime.ray import RayExecutor

    return RayExecutor(**options)  # type: ignore[arg-type]


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "local": LocalExecutor,
    "parallel": _parallel,
    "ray": _ray,
}


def create_executor(name: str, **options: object) -> Executor:
    """An executor by name, built in or from a plugin; unknown names list the known ones."""
    factory = EXECUTORS.get(name)
    if factory is None:
        from qflow.plugins.extensions import by_name

        provided = by_name("executors")
        if name in provided:
            executor: Executor = provided[name].value(**options)
            return executor
        known = sorted({*EXECUTORS, *provided})
        raise QFlowError(
            f"Unknown executor {name!r}; known executors: {', '.join(known)}."
            f"{did_you_mean(name, known)}"
        )
    if name == "local":
        options.pop("workers", None)
    return factory(**options)
