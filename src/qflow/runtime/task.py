"""What the scheduler hands an executor, and what comes back."""

from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True)
class TaskMessage:
    """A ``StepTask`` on its way to a worker process: the step travels as its key in the
    run's ``StepTable``, which the worker holds, so user code is never pickled; a node of the
    run travels as its name (a mapped step's items would each send the same node)."""

    step_key: int
    fields: dict[str, Any]


class StepTable:
    """The steps and graph nodes of one run. The scheduler gives it to an executor that sends
    tasks to worker processes (``bind_steps``); the executor hands it to each worker when it
    starts it, and tasks then travel as ``TaskMessage``s resolved against it."""

    def __init__(self, steps: Iterable[Step[..., Any]] = (), nodes: Iterable[Node] = ()) -> None:
        self._steps = {id(step): step for step in steps}
        self._nodes = {node.name: node for node in nodes}

    def __len__(self) -> int:
        return len(self._steps)

    def message(self, task: StepTask) -> TaskMessage:
        """``task`` without its step, which the receiving worker finds in its table."""
        key = id(task.step)
        if self._steps.get(key) is not task.step:
            raise QFlowInternalError(
                f"Step of task {task.node.name} is not in the run's step table; the executor "
                "must be given the run's steps (bind_steps) before its workers start."
            )
        fields = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
        del fields["step"]
        if self._nodes.get(task.node.name) == task.node:
            fields["node"] = task.node.name
        return TaskMessage(key, fields)

    def task(self, message: TaskMessage) -> StepTask:
        """The task a message describes, with its step (and node) from this table."""
        fields = dict(message.fields)
        node = fields["node"]
        if isinstance(node, str):
            fields["node"] = self._nodes.get(node)
        step = self._steps.get(message.step_key)
        if step is None or fields["node"] is None:
            name = node if isinstance(node, str) else node.name
            raise QFlowInternalError(
                f"Step of task {name} is unknown in this worker process: it was started with "
                "another run's step table."
            )
        return StepTask(step=step, **fields)


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
