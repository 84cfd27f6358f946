"""`qflow new`: the wizard through the CLI (flags, defaults, a real interactive subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import qflow
from qflow.cli.app import run_cli
from qflow.config import load_config
from qflow.errors import WorkflowNotFoundError
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
    assert "SUCCESS: Project 'churn' is created successfully." in out
    assert "SUCCESS: Component mlflow configured" in out
    assert "SUCCESS: Component parallel configured" in out
    assert "SUCCESS: Project 'churn' is configured." in out
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
        "data/README.md",
        "data/raw/.gitkeep",
        "data/intermediate/.gitkeep",
        "data/outputs/.gitkeep",
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
    assert pyproject["tool"]["qflow"]["workflow-modules"] == ["demo.workflows"]
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
        ("json", r"would shadow the standard library module 'json'.*--project-name json_project"),
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
    assert "Unknown tracker 'mlfow'. Choices: mlflow, wandb, filetracker." in err
    assert "Did you mean: mlflow?" in err
    assert list(tmp_path.iterdir()) == []
    assert run_cli(["new", "-d", str(tmp_path), "--yes"]) == 1
    assert "needs --project-name" in capsys.readouterr().err


def test_interactive_wizard_in_a_real_terminal_session(tmp_path: Path) -> None:
    answers = [
        "demo",  # Name of the project
        "mlfow",  # Tracker to configure: a typo is asked again
        "mlflow",
        "team_mlflow",  # Name of the new configuration
        "http://127.0.0.1:5000",  # tracking server
        "",  # model registry: default none
        "parallel",  # Executor to configure
        "",  # Name of the new configuration: default parallel
        "four",  # workers: not a number, asked again
        "4",
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
        "Tracker to configure (mlflow, wandb, filetracker) [filetracker]: ",
        "Error: 'mlfow' is not one of mlflow, wandb, filetracker.",
        "Tracker to configure (mlflow, wandb, filetracker) [filetracker]: ",
        "SUCCESS: Project 'demo' is created successfully.",
        "Configuring the component: 'mlflow':",
        "Name of the new configuration [mlflow]: ",
        "Address of local or remote tracking server [.qflow/tracker/mlflow]: ",
        "Address of local or remote model registry server [null]: ",
        "SUCCESS: Component mlflow configured",
        "SUCCESS: Project 'demo' is configured.",
        "Executor to configure (local, parallel, ray) [local]: ",
        "Configuring the component: 'parallel':",
        "Name of the new configuration [parallel]: ",
        "Number of worker processes [null]: ",
        "Error: Number of worker processes: 'four' is not a whole number (or 'none').",
        "Number of worker processes [null]: ",
        "SUCCESS: Component parallel configured",
        "Project demo is in ",
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


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("numpy", r"would shadow the package 'numpy' of numpy, a dependency of every new project"),
        ("sklearn", r"would shadow the package 'sklearn' of scikit-learn"),
        ("hydra", r"would shadow the package 'hydra' of hydra-core"),
        ("pandas", r"would shadow the package 'pandas' of pandas"),
        ("mlflow", r"would shadow the package 'mlflow' of mlflow"),
        ("qflow", r"would shadow the package 'qflow' of qflow-framework"),
        ("pexpect", r"would shadow the installed module 'pexpect' \(distribution pexpect\)"),
        ("data", r"is a folder of the project itself"),
    ],
)
def test_names_that_shadow_a_dependency_are_refused_with_a_suggestion(
    tmp_path: Path, cli: None, capsys: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    assert run_cli(["new", "-n", name, "-d", str(tmp_path), "--yes"]) == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
    assert re.search(rf"Project name '{name}' {reason}.*Nothing was written", err), err
    suggested = re.search(r"Hint: qflow new --project-name (\w+)", err)
    assert suggested, err
    assert suggested.group(1) == f"{name}_project"
    assert list(tmp_path.iterdir()) == []
    assert run_cli(["new", "-n", suggested.group(1), "-d", str(tmp_path), "--yes"]) == 0


def test_a_name_refused_at_the_prompt_is_asked_again(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qflow", "new", "-d", str(tmp_path)],
        input="sklearn\nsk_demo\n\n\n",
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error: Project name 'sklearn' would shadow the package 'sklearn'" in result.stdout
    assert result.stdout.count("Name of the project [example]: ") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["sk_demo"]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_new_project_is_a_git_repository_with_a_first_commit_without_an_identity(
    tmp_path: Path, cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in CI: no user.name / user.email anywhere; the repository gets a local one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for variable in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(variable, raising=False)
    assert run_cli(["new", "-n", "demo", "-d", str(tmp_path), "--yes"]) == 0
    root = tmp_path / "demo"
    head = _git(root, "rev-parse", "--short", "HEAD")
    assert f"first commit {head}" in capsys.readouterr().out
    assert _git(root, "log", "--format=%s") == "Initial commit (qflow new)"
    assert _git(root, "status", "--porcelain") == ""
    tracked = _git(root, "ls-files").splitlines()
    assert {"pyproject.toml", "data/README.md", "data/raw/.gitkeep", ".gitignore"} <= set(tracked)
    assert _git(root, "config", "--local", "user.name") == "QFlow"
    (root / "data" / "raw" / "big.csv").write_text("a,b\n1,2\n")
    (root / ".qflow").mkdir()
    assert _git(root, "status", "--porcelain") == ""  # data files and .qflow/ stay out of git


def test_inside_a_repository_no_repository_is_made(
    tmp_path: Path, cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _git(tmp_path, "init", "--quiet")
    assert run_cli(["new", "-n", "demo", "-d", str(tmp_path), "--yes"]) == 0
    assert "first commit" not in capsys.readouterr().out
    assert not (tmp_path / "demo" / ".git").exists()
    assert "demo/" in _git(tmp_path, "status", "--porcelain")


def test_without_git_the_project_is_made_without_a_commit(
    tmp_path: Path, cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert run_cli(["new", "-n", "demo", "-d", str(tmp_path), "--yes"]) == 0
    assert (tmp_path / "demo" / "pyproject.toml").is_file()
    assert not (tmp_path / "demo" / ".git").exists()


def test_every_module_under_workflows_is_discovered(
    tmp_path: Path, cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qflow.config import find_project
    from qflow.runtime.discovery import load_workflow, project_workflows

    assert run_cli(["new", "-n", "wfdemo", "-d", str(tmp_path), "--yes"]) == 0
    root = tmp_path / "wfdemo"
    (root / "src/wfdemo/workflows/extra.py").write_text(
        "import qflow as qf\n\n\n@qf.step\ndef one() -> int:\n    return 1\n\n\n"
        "@qf.workflow\ndef extra_flow() -> object:\n    return one()\n"
    )
    nested = root / "src/wfdemo/workflows/nightly"
    nested.mkdir()
    (nested / "__init__.py").write_text("")
    (nested / "report.py").write_text(
        "import qflow as qf\n\n\n@qf.step\ndef two() -> int:\n    return 2\n\n\n"
        "@qf.workflow\ndef nightly_report() -> object:\n    return two()\n"
    )
    monkeypatch.syspath_prepend(str(root / "src"))
    project = find_project(root)
    assert project.workflow_modules == ("wfdemo.workflows",)
    found = project_workflows(project)
    assert {"logistic_regression", "extra_flow", "nightly_report"} <= set(found)
    assert load_workflow("nightly_report", project).name == "nightly_report"
    with pytest.raises(WorkflowNotFoundError, match=r"Known workflows: .*extra_flow"):
        load_workflow("extra_flw", project)


def test_a_ray_executor_adds_the_ray_extra(tmp_path: Path, cli: None) -> None:
    from qflow.scaffold.project import _qflow_extras

    if "ray" not in _qflow_extras():
        pytest.skip("qflow-framework has no ray extra here")
    args = ["new", "-n", "demo", "-d", str(tmp_path), "--tracker", "mlflow", "--executor", "ray"]
    assert run_cli([*args, "--yes"]) == 0
    dependencies = tomllib.loads((tmp_path / "demo/pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    assert dependencies[0] == f"qflow-framework[mlflow,ray]=={qflow.__version__}"
    assert _yaml(tmp_path / "demo/conf/executor/ray.yaml") == {"name": "ray", "address": None}


def test_without_workflow_modules_the_workflows_package_is_searched(
    tmp_path: Path, cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qflow.config import find_project
    from qflow.runtime.discovery import project_workflows

    assert run_cli(["new", "-n", "bare", "-d", str(tmp_path), "--yes"]) == 0
    root = tmp_path / "bare"
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert 'workflow-modules = ["bare.workflows"]\n' in text
    pyproject.write_text(text.replace('workflow-modules = ["bare.workflows"]\n', ""))
    monkeypatch.syspath_prepend(str(root / "src"))
    project = find_project(root)
    assert project.workflow_modules == ()
    assert set(project_workflows(project)) == {"logistic_regression"}
    (root / "src/bare/workflows").rename(root / "src/bare/flows")
    assert project_workflows(project) == {}
