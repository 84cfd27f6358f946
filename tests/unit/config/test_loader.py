"""Hydra composition of a real conf/ tree, and the messages for bad overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from qflow.config import load_config
from qflow.errors import ConfigError


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    (folder / "model").mkdir(parents=True)
    (folder / "tracker").mkdir()
    (folder / "wf.yaml").write_text(
        "defaults:\n  - _self_\n  - model: logreg\n  - tracker: filetracker\n"
        "seed: 1\nflag: true\nname: demo\nlayers: [1, 2]\ndata:\n  n: 10\n  path: x.csv\n"
    )
    (folder / "model" / "logreg.yaml").write_text("C: 1.0\nmax_iter: 5\n")
    (folder / "model" / "svm.yaml").write_text("C: 1.0\nkernel: rbf\n")
    (folder / "tracker" / "filetracker.yaml").write_text("name: filetracker\n")
    return folder


def test_groups_defaults_and_overrides_compose(conf: Path) -> None:
    config = load_config("wf", ["model=svm", "model.C=0.5", "+extra=1", "seed=2"], conf)
    assert config["model"] == {"C": 0.5, "kernel": "rbf"}
    assert config["extra"] == 1
    assert config["seed"] == 2
    assert config["tracker"] == {"name": "filetracker"}


def test_int_is_accepted_for_a_float_and_anything_for_null(conf: Path) -> None:
    assert load_config("wf", ["model.C=2"], conf)["model"]["C"] == 2
    assert load_config("wf", ["name=3"], conf)["name"] == 3
    assert load_config("wf", ["++data=other"], conf)["data"] == "other"


def test_unknown_group_option_lists_the_choices(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown option 'svmx' for config group 'model'") as e:
        load_config("wf", ["model=svmx"], conf)
    message = str(e.value)
    assert "Valid choices: logreg, svm." in message
    assert "Did you mean: svm?" in message
    assert "search path" not in message


def test_unknown_key_names_it_and_lists_the_keys_there(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown config key 'model.D'") as e:
        load_config("wf", ["model.D=1"], conf)
    assert "Keys there: C, max_iter." in str(e.value)
    assert "+model.D=1" in str(e.value)


def test_misspelled_key_gets_a_suggestion(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"Did you mean: max_iter\?"):
        load_config("wf", ["model=logreg", "model.max_itr=3"], conf)
    with pytest.raises(ConfigError, match=r"Keys there: data, flag, layers, model, name"):
        load_config("wf", ["sed=3"], conf)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.C=abc", r"'model.C' is a float \(1.0\), not a str \('abc'\)"),
        ("seed=1.5", r"'seed' is a int \(1\), not a float"),
        ("flag=3", r"'flag' is a bool"),
        ("data=foo", r"'data' is a group of keys \(keys n, path\)"),
        ("layers=3", r"'layers' is a list"),
    ],
    ids=["float-str", "int-float", "bool-int", "mapping-str", "list-int"],
)
def test_wrong_type_names_the_key_and_the_expected_type(
    conf: Path, override: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config("wf", [override], conf)


def test_sweep_without_multirun_says_to_add_m(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"add -m: `qflow run WORKFLOW -m seed=1,2`"):
        load_config("wf", ["seed=1,2"], conf)


def test_parse_errors_and_removals(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"Override 'seed=\[1' cannot be parsed"):
        load_config("wf", ["seed=[1"], conf)
    with pytest.raises(ConfigError, match=r"Cannot remove 'nope'"):
        load_config("wf", ["~nope"], conf)
    assert "seed" not in load_config("wf", ["~seed"], conf)


def test_adding_a_group_twice_explains_the_plain_form(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"Write model=OPTION \(without \+\)"):
        load_config("wf", ["+model=svm"], conf)


def test_unknown_group_in_the_defaults_list_of_the_file(conf: Path) -> None:
    (conf / "wf.yaml").write_text("defaults:\n  - model: nope\n  - _self_\n")
    with pytest.raises(ConfigError, match=r"from the defaults list of wf.yaml\)\. Valid choi"):
        load_config("wf", [], conf)


def test_without_a_config_file_the_overrides_are_the_config(tmp_path: Path) -> None:
    assert load_config("wf", ["n=3", "+name=x"], tmp_path) == {"n": 3, "name": "x"}
    with pytest.raises(ConfigError, match="malformed"):
        load_config("wf", ["=3"], tmp_path)
