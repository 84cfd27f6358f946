"""A task crosses to a worker process as a message: its step as a key in the run's step table."""

from __future__ import annotations

import pickle

import pytest

import qflow as qf
from qflow.errors import QFlowInternalError
from qflow.graph.model import Node
from qflow.runtime.task import StepTable, StepTask


def _task() -> tuple[StepTask, StepTable]:
    @qf.step
    def add_one(x: int) -> int:  # a local function: pickle cannot send it by reference
        return x + 1

    node = Node("0_add_one", "add_one", 0, ("return",))
    task = StepTask("run-1", 7, node, add_one, {"x": 1}, {}, item=2, project_root="/p")
    return task, StepTable([add_one])


def test_a_task_reaches_the_worker_whole_without_its_code() -> None:
    task, table = _task()
    received = table.task(pickle.loads(pickle.dumps(table.message(task))))
    assert received.step is task.step
    assert received == task


def test_a_step_outside_the_table_is_refused_on_both_sides() -> None:
    task, table = _task()
    with pytest.raises(QFlowInternalError, match="not in the run's step table"):
        StepTable().message(task)
    with pytest.raises(QFlowInternalError, match="unknown in this worker process"):
        StepTable().task(table.message(task))


def test_a_node_of_the_run_travels_by_name() -> None:
    task, _ = _task()
    table = StepTable([task.step], [task.node])
    message = table.message(task)
    assert message.fields["node"] == "0_add_one"
    assert table.task(pickle.loads(pickle.dumps(message))) == task
    with pytest.raises(QFlowInternalError, match="unknown in this worker process"):
        StepTable([task.step]).task(message)
