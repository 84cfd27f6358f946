"""A config composed again with other values (a sweep's trials, a multirun's runs) is the one
Hydra composes from scratch, and an edit of the config folder is seen at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qflow.config import load_config
from qflow.config.loader import _hydra_compose
from qflow.errors import ConfigError


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    (folder / "model").mkdir(parents=True)
    (folder / "wf.yaml").write_text(
        "defaults:\n  - _self_\n  - model: logreg\n"
        "seed: 1\nlr: 0.1\nwarmup: ${lr}\nname: run-${seed}\nlayers: [1, 2]\n"
        "sweep:\n  params:\n    lr: float(0, 1)\n"
    )
    (folder / "model" / "logreg.yaml").write_text("C: 1.0\nscaled: ${lr}\n")
    (folder / "model" / "svm.yaml").write_text("C: 2.0\nkernel: rbf\n")
    return folder


@pytest.mark.parametrize(
    "overrides",
    [
        ["~sweep", "lr=0.5"],
        ["~sweep", "lr=0.25", "seed=7"],
        ["~sweep", "model=svm", "model.C=0.5"],
        ["model.C=3", "model=svm"],
        ["+extra=1", "extra=2"],
        ["lr=0.3", "lr=0.4"],
        ["layers=[3, 4, 5]", "name='a b'"],
        ["++seed=x"],
        ["~warmup", "lr=0.9"],
    ],
)
def test_each_composition_equals_hydras_from_scratch(conf: Path, overrides: list[str]) -> None:
    for _ in range(2):  # the second is composed from what the first left
        assert load_config("wf", overrides, conf) == _hydra_compose(conf / "wf.yaml", overrides)


def test_trials_of_one_base_get_their_own_values(conf: Path) -> None:
    first = load_config("wf", ["~sweep", "lr=0.5", "seed=2"], conf)
    second = load_config("wf", ["~sweep", "lr=0.75", "seed=3"], conf)
    assert (first["warmup"], first["model"]["scaled"], first["name"]) == (0.5, 0.5, "run-2")
    assert (second["warmup"], second["model"]["scaled"], second["name"]) == (0.75, 0.75, "run-3")
    assert "sweep" not in second


def test_an_edited_config_file_is_read_again(conf: Path) -> None:
    assert load_config("wf", ["lr=0.5"], conf)["model"]["C"] == 1.0
    group_file = conf / "model" / "logreg.yaml"
    group_file.write_text("C: 4.0\nscaled: ${lr}\n")
    stamp = group_file.stat().st_mtime_ns + 1_000_000
    os.utime(group_file, ns=(stamp, stamp))  # an edit within the clock's tick is an edit too
    assert load_config("wf", ["lr=0.5"], conf)["model"]["C"] == 4.0
    (conf / "model" / "logreg.yaml").unlink()
    with pytest.raises(ConfigError, match="logreg"):
        load_config("wf", ["lr=0.5"], conf)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lr=abc"], r"Override 'lr=abc' has the wrong type"),
        (["model.D=1"], r"Unknown config key 'model.D'"),
        (["extra=2", "+extra=1"], r"extra"),
        (["~nothing"], r"nothing"),
    ],
)
def test_errors_are_the_same_the_second_time(
    conf: Path, overrides: list[str], message: str
) -> None:
    load_config("wf", ["lr=0.5"], conf)  # the base is composed and kept
    with pytest.raises(ConfigError, match=message) as first:
        load_config("wf", overrides, conf)
    with pytest.raises(ConfigError) as second:
        load_config("wf", overrides, conf)
    assert str(second.value) == str(first.value)
