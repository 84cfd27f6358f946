"""Run configuration: Hydra/OmegaConf composition of a project's conf/ tree and overrides.

This layer imports no other QFlow layer but ``errors``.
"""

from qflow.config.instantiate import instantiate
from qflow.config.loader import config_file_for, load_config, parse_override
from qflow.config.project import Project, existing_project, find_project
from qflow.config.sweep import expand_multirun

__all__ = [
    "Project",
    "config_file_for",
    "existing_project",
    "expand_multirun",
    "find_project",
    "instantiate",
    "load_config",
    "parse_override",
]
