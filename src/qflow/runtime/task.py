"""What the scheduler hands an executor, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qflow.dsl.step import Step
    from qflow.graph.model import Node
    from qflow.store.artifacts import ArtifactRef


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
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """Only metadata travels back, plus in-memory values when the executor shares memory."""

    step_run_id: int
    status: str
    outputs: dict[str, ArtifactRef]
    started_at: float
    ended_at: float
    attempts: int = 1
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    stdout: str = ""
    stderr: str = ""
