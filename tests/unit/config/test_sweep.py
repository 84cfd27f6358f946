"""Expanding -m sweeps into one override list per run (Hydra's override grammar)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qflow.config import expand_multirun
from qflow.errors import ConfigError


def test_cartesian_product_last_key_fastest() -> None:
    runs = expand_multirun(["model.C=0.1,1,10", "seed=1,2", "+tag=x"])
    assert runs == [
        ["model.C=0.1", "seed=1", "+tag=x"],
        ["model.C=0.1", "seed=2", "+tag=x"],
        ["model.C=1", "seed=1", "+tag=x"],
        ["model.C=1", "seed=2", "+tag=x"],
        ["model.C=10", "seed=1", "+tag=x"],
        ["model.C=10", "seed=2", "+tag=x"],
    ]


def test_no_sweep_is_one_run_and_ranges_and_choices_expand() -> None:
    assert expand_multirun(["a=1"]) == [["a=1"]]
    assert expand_multirun([]) == [[]]
    assert expand_multirun(["n=range(0,3)", "m=choice(x,y)"]) == [
        ["n=0", "m=x"],
        ["n=0", "m=y"],
        ["n=1", "m=x"],
        ["n=1", "m=y"],
        ["n=2", "m=x"],
        ["n=2", "m=y"],
    ]


def test_quoted_commas_stay_one_value() -> None:
    assert expand_multirun(["name='a,b'"]) == [["name='a,b'"]]


def test_glob_over_group_options(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    for name in ("logreg", "svm", "svc"):
        (tmp_path / "model" / f"{name}.yaml").write_text("C: 1\n")
    assert expand_multirun(["model=glob(s*)"], tmp_path) == [["model=svc"], ["model=svm"]]
    with pytest.raises(ConfigError, match=r"matches no option .* logreg, svc, svm"):
        expand_multirun(["model=glob(x*)"], tmp_path)


def test_intervals_and_huge_sweeps_are_refused() -> None:
    with pytest.raises(ConfigError, match="continuous interval"):
        expand_multirun(["lr=interval(0,1)"])
    with pytest.raises(ConfigError, match="expand to 1000 runs; the limit is 10"):
        expand_multirun(["a=range(0,10)", "b=range(0,10)", "c=range(0,10)"], limit=10)
    with pytest.raises(ConfigError, match=r"Override 'a=\[1' cannot be parsed"):
        expand_multirun(["a=[1"])
