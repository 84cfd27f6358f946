"""User-facing decorators. The DSL only describes work; the runtime executes it."""

from qflow.dsl.step import Step, StepOptions, step
from qflow.dsl.tracing import NamedOutputs, StepOutput, TracedWorkflow, when
from qflow.dsl.values import DataFile, Failed
from qflow.dsl.workflow import Workflow, workflow

__all__ = [
    "DataFile",
    "Failed",
    "NamedOutputs",
    "Step",
    "StepOptions",
    "StepOutput",
    "TracedWorkflow",
    "Workflow",
    "step",
    "when",
    "workflow",
]
