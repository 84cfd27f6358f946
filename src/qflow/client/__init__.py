"""Read runs back (``qf.Client``) and start them from Python (``qf.run``)."""

from qflow.client.client import Client, MetricHistory, RunTable, RunView, StepView
from qflow.client.launch import run

__all__ = ["Client", "MetricHistory", "RunTable", "RunView", "StepView", "run"]
