"""What the scheduler hands an executor, and what comes back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qflow.errors import QFlowInternalError
from qflow.store.metadata.records import StepStatus

if TYPE_CHECKING:
    from qflow.dsl.step import Step
    from qflow.graph.model import Node
    from qflow.runtime.reads import FileAccess
    from qflow.store.artifacts import ArtifactRef


INLINE_MAX = 16 * 1024
"""Values up to this many bytes travel with their ref and live in the metadata store."""


def handle_key(node: str, output: str) -> str:
    return f"{node}.{output}"


_LIVE_STEPS: dict[int, Step[..., Any]] = {}


def register_steps(steps: Iterable[Step[..., Any]]) -> list[int]:
    """Make steps known to worker processes forked after this call, which then receive
    tasks without pickling user code. Returns the keys, for ``forget_steps``."""
    keys = []
    for step in steps:
        _LIVE_STEPS[id(step)] = step
        keys.append(id(step))
    return keys


def forget_steps(keys: Iterable[int]) -> None:
    for key in keys:
        _LIVE_STEPS.pop(key, None)


@dataclass
class StepTask:
    """One step call to execute: its bound arguments (with handles) and where inputs are."""

    run_id: str
    step_run_id: int
    node: Node
    step: Step[..., Any]
    arguments: dict[str, Any]
    inputs: dict[str, ArtifactRef]
    item: int | None = None
    """Index of the item for one call of a mapped step."""
    project_root: str = ""
    """Where per-step environments are cached and the project's code is found."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["step"] = id(self.step)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        step = _LIVE_STEPS.get(state["step"])
        if step is None:
            raise QFlowInternalError(
                f"Step of task {state['node'].name} is unknown in this worker process; workers "
                "must be forked after register_steps()."
            )
        self.__dict__.update(state, step=step)


@dataclass
class TaskResult:
    """Only metadata travels back: outputs are in the artifact store."""

    step_run_id: int
    status: StepStatus
    outputs: dict[str, ArtifactRef]
    started_at: float
    ended_at: float
    attempts: int = 1
    error: str | None = None
    traceback: str | None = None
    stdout: str = ""
    stderr: str = ""
    files: list[FileAccess] = field(default_factory=list)
    """The files the step read and wrote while it ran (``runtime.reads``)."""
