"""A sweep's settings and its Optuna study: what to search, where, with which sampler.

``plan`` reads the search space from the workflow's composed config and checks every swept
key exists; the settings (``SweepSpec``) are saved with the study as its user attribute
``qflow``, so a sweep can be resumed from any machine that reaches the store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError, QFlowError, did_you_mean
from qflow.sweep.space import SearchSpace, search_space

if TYPE_CHECKING:
    import optuna

    from qflow.config.project import Project

SAMPLERS = ("tpe", "random", "grid", "cmaes")


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs; saved with the study (user attribute ``qflow``)."""

    workflow: str
    overrides: list[str]
    params: dict[str, str]
    objective: str
    direction: str
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    executor: str | None = None
    workers: int | None = None
    drop_sweep_section: bool = False

    def space(self) -> SearchSpace:
        return search_space(None, self.params, objective=self.objective, direction=self.direction)


def plan(
    workflow: str,
    project: Project,
    *,
    overrides: Sequence[str] = (),
    params: Mapping[str, str],
    objective: str | None,
    direction: str | None,
) -> SweepSpec:
    """Read the search space from the composed config and check every swept key exists."""
    from qflow.config.loader import config_file_for, load_config
    from qflow.runtime.discovery import load_workflow

    name = load_workflow(workflow, project).name
    config = load_config(name, overrides, project.conf_dir)
    section = config.get("sweep")
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError(f"The config's sweep section must be a mapping, not {section!r}.")
    space = search_space(section, params, objective=objective, direction=direction)
    has_file = config_file_for(name, project.conf_dir) is not None
    if has_file:
        known = _leaf_keys({k: v for k, v in config.items() if k != "sweep"}, "")
        for key in space.params:
            if key not in known:
                raise ConfigError(
                    f"Sweep parameter {key!r} is not a key of {name}'s config."
                    f"{did_you_mean(key, known)}\nHint: sweep keys are dotted config paths "
                    "such as model.C; add the key to the config first."
                )
    return SweepSpec(
        workflow,
        list(overrides),
        space.expressions(),
        space.objective,
        space.direction,
        drop_sweep_section=has_file and section is not None,
    )


def load_spec(project: Project, sweep_id: str) -> SweepSpec:
    """The settings a sweep was started with."""
    import optuna

    from qflow.store.location import default_store_url
    from qflow.sweep.storage import open_storage

    storage = open_storage(default_store_url(project.root))
    study = optuna.load_study(study_name=sweep_id, storage=storage)
    saved = study.user_attrs.get("qflow")
    if not isinstance(saved, dict):
        raise QFlowError(
            f"Study {sweep_id!r} was not created by qflow sweep; it has no QFlow settings."
        )
    return SweepSpec(**saved)


def _leaf_keys(data: Mapping[str, Any], prefix: str) -> list[str]:
    keys = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        keys.append(path)
        if isinstance(value, Mapping):
            keys.extend(_leaf_keys(value, path + "."))
    return keys


def positive(name: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"--{name} must be at least 1, not {value}.")
    return value


def check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"Unknown {what} {value!r}; {what}s: {', '.join(choices)}."
            f"{did_you_mean(value, choices)}"
        )


def create_sampler(name: str, space: SearchSpace, seed: int | None) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name (categorical params under CMA-ES are sampled at random)."""
    import optuna

    check_choice("sampler", name, SAMPLERS)
    if name == "grid":
        return _grid_sampler(space, seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def _grid_sampler(space: SearchSpace, seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's grid sampler, without its ``study.stop()`` when the grid is done: that only
    works inside ``study.optimize``; the driver stops at the grid's size itself."""
    import optuna

    class Grid(optuna.samplers.GridSampler):
        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            return None

    return Grid(space.grid(), seed=seed)


def open_study(project: Project, sweep_id: str, spec: SweepSpec, *, create: bool) -> optuna.Study:
    import optuna

    from qflow.store.location import default_store_url
    from qflow.sweep.pruning import create_pruner
    from qflow.sweep.storage import open_storage

    space = spec.space()
    storage = open_storage(default_store_url(project.root))
    pruner = create_pruner(spec.pruner)
    seed = spec.seed
    if not create:
        study = optuna.load_study(study_name=sweep_id, storage=storage)
        if seed is not None:  # another process, or a later one: do not replay the same draws
            seed += len(study.get_trials(deepcopy=False)) + os.getpid()
    sampler = create_sampler(spec.sampler, space, seed)
    if create:
        study = optuna.create_study(
            study_name=sweep_id,
            storage=storage,
            direction=spec.direction,  # type: ignore[arg-type]
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr("qflow", asdict(spec))
        return study
    return optuna.load_study(study_name=sweep_id, storage=storage, sampler=sampler, pruner=pruner)
