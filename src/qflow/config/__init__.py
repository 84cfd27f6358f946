"""Run configuration: Hydra/OmegaConf composition of a project's conf/ tree and overrides.

This layer imports no other QFlow layer but ``errors``.
"""

from qflow.config.loader import load_config, parse_override
from qflow.config.project import Project, find_project

__all__ = ["Project", "find_project", "load_config", "parse_override"]
