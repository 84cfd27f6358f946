"""qf.instantiate builds class-based steps (and anything else) from `_target_` configs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

import qflow as qf
from qflow.errors import ConfigError


@qf.step
@dataclass
class Scale:
    factor: float = 1.0
    offset: float = 0.0

    def __call__(self, values: list[float]) -> list[float]:
        return [v * self.factor + self.offset for v in values]


@dataclass
class Holder:
    inner: Any
    items: list[Any]


@qf.step
def numbers(n: int) -> list[float]:
    return [float(i) for i in range(n)]


@qf.workflow
def scaled(cfg: Any) -> Any:
    return qf.instantiate(cfg.model)(numbers(cfg.n))


HERE = f"{__name__}"


def test_instantiate_a_class_step_from_omegaconf() -> None:
    cfg = OmegaConf.create({"model": {"_target_": f"{HERE}.Scale", "factor": 2.0}})
    step = qf.instantiate(cfg.model, offset=1.0)
    assert step == Scale(2.0, 1.0)
    assert step([1.0, 2.0]) == [3.0, 5.0]


def test_nested_targets_args_and_partial() -> None:
    built = qf.instantiate(
        {
            "_target_": f"{HERE}.Holder",
            "inner": {"_target_": f"{HERE}.Scale", "factor": 3},
            "items": [{"_target_": f"{HERE}.Scale"}, 5],
        }
    )
    assert built == Holder(Scale(3), [Scale(), 5])
    partial = qf.instantiate({"_target_": f"{HERE}.Scale", "_partial_": True, "factor": 4})
    assert isinstance(partial, functools.partial)
    assert partial(offset=1) == Scale(4, 1)
    assert qf.instantiate({"_target_": "builtins.max", "_args_": [1, 7]}) == 7


def test_workflow_instantiates_its_step_from_config(tmp_path: Path) -> None:
    config = {"n": 3, "model": {"_target_": f"{HERE}.Scale", "factor": 10.0}}
    run = qf.run(scaled, config=config, project_dir=tmp_path)
    assert run.status == "succeeded"
    assert run.step("Scale").load() == [0.0, 10.0, 20.0]
    assert run.step("Scale").params == {"factor": "10.0", "offset": "0.0"}


def test_errors_name_the_key_and_the_choices() -> None:
    cfg = OmegaConf.create({"model": {"_target_": f"{HERE}.Scale", "factr": 2.0}})
    with pytest.raises(ConfigError, match=r"model.factr is not a parameter .* factor, offset"):
        qf.instantiate(cfg.model)
    with pytest.raises(ConfigError, match=r"has no .Scal.\.\nDid you mean: Scale"):
        qf.instantiate({"_target_": f"{HERE}.Scal"})
    with pytest.raises(ConfigError, match=r"module 'nowhere_pkg' cannot be imported"):
        qf.instantiate({"_target_": "nowhere_pkg.Thing"})
    with pytest.raises(ConfigError, match=r"config has no '_target_' key, .*keys: factor"):
        qf.instantiate({"factor": 1})
    with pytest.raises(ConfigError, match=r"must name an object"):
        qf.instantiate({"_target_": "Scale"})
    with pytest.raises(ConfigError, match=r"needs a mapping"):
        qf.instantiate([1, 2])
