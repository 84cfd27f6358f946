"""`qflow new`: the wizard through the CLI (flags, defaults, a real interactive subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import qflow
from qflow.cli.app import run_cli
from qflow.config import load_config
from qflow.scaffold import project as scaffold_project


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def _yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def test_new_with_flags_writes_the_documented_layout(
    tmp_path: Path, cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        [
            "new",
            "--project-name",
            "churn",
            "-d",
            str(tmp_path),
            "--tracker",
            "mlflow",
            "--tracking-uri",
            "http://127.0.0.1:5000",
            "--registry-uri",
            "sqlite:///registry.db",
            "--executor",
            "parallel",
            "--workers",
            "2",
            "--yes",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    root = tmp_path / "churn"
    assert "Created project churn" in out
    for relative in (
        "conf/logistic_regression.yaml",
        "conf/data/iris.yaml",
        "conf/model/svm.yaml",
        "src/churn/steps/data.py",
        "src/churn/steps/model.py",
        "src/churn/workflows/logistic_regression.py",
        "tests/test_steps.py",
        "tests/test_workflows.py",
        "README.md",
        "requirements.lock",
    ):
        assert (root / relative).is_file(), relative
    assert ".qflow/" in (root / ".gitignore").read_text().splitlines()
    assert _yaml(root / "conf/tracker/mlflow.yaml") == {
        "name": "mlflow",
        "tracking_uri": "http://127.0.0.1:5000",
        "registry_uri": "sqlite:///registry.db",
    }
    assert _yaml(root / "conf/tracker/filetracker.yaml") == {"name": "filetracker"}
    assert _yaml(root / "conf/executor/local.yaml") == {"name": "local"}
    assert _yaml(root / "conf/executor/parallel.yaml") == {"name": "parallel", "workers": 2}
    workflow_conf = _yaml(root / "conf/logistic_regression.yaml")
    assert isinstance(workflow_conf, dict)
    assert workflow_conf["defaults"][0] == "_self_"
    assert {"tracker": "mlflow"} in workflow_conf["defaults"]
    assert {"executor": "parallel"} in workflow_conf["defaults"]
    config = load_config("logistic_regression", ["model=svm", "model.C=0.5"], root / "conf")
    assert config["model"] == {"_target_": "churn.steps.model.FitSVM", "C": 0.5, "kernel": "rbf"}
    assert config["tracker"]["name"] == "mlflow"
    assert load_config("logistic_regression", ["tracker=filetracker"], root / "conf")[
        "tracker"
    ] == {"name": "filetracker"}


def test_pyproject_pins_and_lock_file(tmp_path: Path, cli: None) -> None:
    assert run_cli(["new", "-n", "demo", "-d", str(tmp_path), "--yes"]) == 0
    root = tmp_path / "demo"
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    assert dependencies[0] == f"qflow-framework=={qflow.__version__}"
    assert all("==" in d for d in dependencies)
    assert pyproject["tool"]["qflow"]["workflow-modules"] == ["demo.workflows.logistic_regression"]
    lines = [
        line for line in (root / "requirements.lock").read_text().splitlines() if line[:1] != "#"
    ]
    pins = dict(line.split("==") for line in lines)
    assert pins["qflow-framework"] == qflow.__version__
    assert {"hydra-core", "omegaconf", "antlr4-python3-runtime", "scikit-learn"} <= set(pins)
    assert list(pins) == sorted(pins)
    notebook = json.loads((root / "notebooks/explore.ipynb").read_text())
    assert notebook["nbformat"] == 4
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(json.dumps(notebook), as_version=4))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-name", r"'bad-name' is not a valid Python package name.*--project-name bad_name"),
        ("1st", r"'1st' is not a valid Python package name"),
        ("class", r"'class' is a Python keyword"),
        ("json", r"would shadow the module 'json'"),
        ("taken", r"already exists\. Nothing was written"),
    ],
    ids=["dash", "digit", "keyword", "stdlib", "existing"],
)
def test_bad_names_are_refused_and_nothing_is_written(
    tmp_path: Path, cli: None, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run_cli(["new", "-n", name, "-d", str(tmp_path), "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    import re

    assert re.search(message, err.replace("\n", " ")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_a_failure_while_writing_leaves_nothing_behind(
    tmp_path: Path, cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(scaffold_project, "lock_text", broken)
    with pytest.raises(OSError, match="disk full"):
        run_cli(["new", "-n", "demo", "-d", str(tmp_path), "--yes"])
    assert list(tmp_path.iterdir()) == []


def test_unknown_choice_given_as_a_flag_lists_the_choices(
    tmp_path: Path, cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["new", "-n", "demo", "-d", str(tmp_path), "--tracker", "mlfow", "-y"]) == 1
    err = capsys.readouterr().err
    assert "Unknown tracker 'mlfow'. Choices: filetracker, mlflow, wandb." in err
    assert "Did you mean: mlflow?" in err
    assert list(tmp_path.iterdir()) == []
    assert run_cli(["new", "-d", str(tmp_path), "--yes"]) == 1
    assert "needs --project-name" in capsys.readouterr().err


def test_interactive_wizard_in_a_real_terminal_session(tmp_path: Path) -> None:
    answers = [
        "demo",  # Name of the project
        "mlfow",  # Select the tracker: a typo is asked again
        "mlflow",
        "team_mlflow",  # Name of the configuration
        "http://127.0.0.1:5000",  # tracking server
        "",  # model registry: default none
        "parallel",  # Select the executor
        "",  # Name of the configuration: default parallel
        "4",  # workers
    ]
    result = subprocess.run(
        [sys.executable, "-m", "qflow", "new", "-d", str(tmp_path)],
        input="\n".join(answers) + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected = [
        "Name of the project [example]: ",
        "Trackers: filetracker, mlflow, wandb",
        "Select the tracker [filetracker]: ",
        "Error: 'mlfow' is not one of filetracker, mlflow, wandb.",
        "Select the tracker [filetracker]: ",
        "Configuring the component: 'mlflow'",
        "Name of the configuration [mlflow]: ",
        "Address of the local or remote tracking server [.qflow/tracker/mlflow]: ",
        "Address of the model registry [none]: ",
        "Executors: local, parallel, ray",
        "Select the executor [local]: ",
        "Configuring the component: 'parallel'",
        "Name of the configuration [parallel]: ",
        "Number of worker processes [none]: ",
        "Created project demo",
    ]
    position = 0
    for text in expected:
        found = out.find(text, position)
        assert found >= 0, f"{text!r} not found after position {position} in:\n{out}"
        position = found + len(text)
    root = tmp_path / "demo"
    assert _yaml(root / "conf/tracker/team_mlflow.yaml") == {
        "name": "mlflow",
        "tracking_uri": "http://127.0.0.1:5000",
        "registry_uri": None,
    }
    assert _yaml(root / "conf/executor/parallel.yaml") == {"name": "parallel", "workers": 4}
    defaults = _yaml(root / "conf/logistic_regression.yaml")["defaults"]  # type: ignore[index]
    assert {"tracker": "team_mlflow"} in defaults and {"executor": "parallel"} in defaults
