"""One config type for every caller, `.yml` files, and parameters typed by the signature,
driven through `qflow run`, `qflow config show` and `qf.run` on a real project folder."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.config.tree import Config
from qflow.errors import ConfigError

FLOWS = """
from typing import Any

import qflow as qf

SEEN: list[tuple[str, str, Any, Any]] = []


@qf.step
def load(path: str, n: int) -> list:
    return [path] * n


@qf.workflow
def data_science(catalog, model_options, n: int = 2) -> Any:
    SEEN.append(("data_science", type(catalog).__name__, catalog.companies,
                 catalog["companies"]))
    SEEN.append(("options", type(model_options).__name__, model_options.test_size,
                 model_options["test_size"]))
    return load(catalog.companies, n)


@qf.workflow
def spaceflights(cfg) -> Any:
    SEEN.append(("spaceflights", type(cfg).__name__, cfg.catalog.companies,
                 cfg["catalog"]["companies"]))
    return data_science(cfg.catalog, cfg.model_options)


@qf.workflow
def playlist(genre: str = "Sci-Fi", recommendations: int = 5, ratio: float = 0.5,
             tags: list[str] = ["a"], options: dict = {"depth": 2}) -> Any:
    SEEN.append(("playlist", type(options).__name__, ratio, options.depth))
    return load(genre, recommendations)
"""


@pytest.fixture
def flows(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "space"\n[tool.qflow]\nworkflow-modules = ["cfgflows"]\n'
    )
    (project / "cfgflows.py").write_text(FLOWS)
    conf = project / "conf"
    conf.mkdir()
    # Kedro's file names: .yml, composed through the defaults list
    (conf / "spaceflights.yml").write_text(
        "defaults:\n  - _self_\n  - parameters_data_science\ncatalog:\n  companies: c.csv\n"
    )
    (conf / "parameters_data_science.yml").write_text("model_options:\n  test_size: 0.2\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.syspath_prepend(str(project))
    import cfgflows  # type: ignore[import-not-found]

    yield cfgflows
    sys.modules.pop("cfgflows", None)


def test_every_caller_gives_a_workflow_the_same_config_type(
    flows: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "spaceflights"]) == 0  # .yml primary config + .yml default
    assert flows.SEEN == [
        ("spaceflights", "Config", "c.csv", "c.csv"),
        ("data_science", "Config", "c.csv", "c.csv"),
        ("options", "Config", 0.2, 0.2),
    ]
    flows.SEEN.clear()
    # the sub-workflow alone, under qflow run: the same type, attribute and item access
    code = run_cli(
        ["run", "data_science", "catalog.companies=c.csv", "model_options.test_size=0.3"]
    )
    assert code == 0, capsys.readouterr().err
    assert flows.SEEN == [
        ("data_science", "Config", "c.csv", "c.csv"),
        ("options", "Config", 0.3, 0.3),
    ]
    flows.SEEN.clear()
    qf.run(
        flows.data_science, {"catalog": {"companies": "d.csv"}, "model_options": {"test_size": 1}}
    )
    assert flows.SEEN[0] == ("data_science", "Config", "d.csv", "d.csv")


def test_config_show_composes_yml_files(flows: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["config", "show", "spaceflights", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"catalog": {"companies": "c.csv"}, "model_options": {"test_size": 0.2}}


def test_config_show_prints_the_defaults_of_the_signature(
    flows: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["config", "show", "playlist", "recommendations=7"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "genre: Sci-Fi\nrecommendations: 7\nratio: 0.5\ntags:\n- a\noptions:\n  depth: 2\n"
    )
    assert run_cli(["config", "show", "data_science"]) == 0
    out = capsys.readouterr().out
    assert "n: 2\n" in out
    assert "# catalog: required" in out and "# model_options: required" in out


def test_a_parameter_of_the_wrong_type_is_refused_before_anything_is_recorded(
    flows: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "playlist", "recommendations=abc"]) == 1
    err = capsys.readouterr().err
    assert "Parameter 'recommendations' of workflow 'playlist' must be an int" in err
    assert "not 'abc' (str)" in err and "Traceback" not in err
    assert run_cli(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run_cli(["run", "playlist", "tags=[1,x]"]) == 0  # str items: 1 becomes "1"
    assert run_cli(["run", "playlist", "ratio=2", "options.depth=3"]) == 0
    assert flows.SEEN[-1] == ("playlist", "Config", 2.0, 3)
    assert type(flows.SEEN[-1][2]) is float  # an int given for a float parameter is widened
    assert run_cli(["run", "playlist", "ratio=high"]) == 1
    assert "Parameter 'ratio' of workflow 'playlist' must be a float" in capsys.readouterr().err


def test_config_is_a_dict_with_attribute_access() -> None:
    cfg = Config({"model": {"C": 1.0, "layers": [{"n": 2}]}, "items": 3})
    assert cfg.model.layers[0].n == 2 and cfg["model"]["C"] == 1.0
    assert cfg["items"] == 3 and callable(cfg.items)  # dict methods win over keys
    assert json.loads(json.dumps(cfg)) == {"model": {"C": 1.0, "layers": [{"n": 2}]}, "items": 3}
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert type(pickle.loads(pickle.dumps(cfg)).model) is Config
    cfg.seed = 4
    assert cfg["seed"] == 4 and getattr(cfg, "missing", None) is None
    with pytest.raises(AttributeError, match=r"(?s)Config key 'modle' does not exist.*model"):
        _ = cfg.modle
    with pytest.raises(ConfigError, match=r"Config key 'model.layers\[0\].m' does not exist"):
        _ = cfg.model.layers[0].m


def test_a_missing_config_key_is_one_line_naming_the_key_and_the_line(
    flows: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["run", "spaceflights", "catalog.companies=x", "~catalog.companies"]) == 1
    err = capsys.readouterr().err
    assert "Config key 'catalog.companies' does not exist; keys under 'catalog': (none)" in err
    assert "cfgflows.py:" in err and "Traceback" not in err
