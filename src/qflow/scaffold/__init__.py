"""``qflow new`` and ``qflow configure``: project templates, the wizard's questions, components."""

from qflow.scaffold.components import Component, current_default, set_default, write_component
from qflow.scaffold.project import WORKFLOW, check_project_name, create_project
from qflow.scaffold.wizard import ask_component

__all__ = [
    "WORKFLOW",
    "Component",
    "ask_component",
    "check_project_name",
    "create_project",
    "current_default",
    "set_default",
    "write_component",
]
