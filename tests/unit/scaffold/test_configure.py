"""`qflow configure COMPONENT` rewrites the group file and the workflow configs' default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qflow.cli.app import run_cli
from qflow.config import load_config
from qflow.scaffold import create_project


@pytest.fixture
def made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return create_project("shop", tmp_path)


def _config(root: Path, *overrides: str) -> dict[str, object]:
    return load_config("logistic_regression", list(overrides), root / "conf")


def test_configure_tracker_with_flags(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _config(made)["tracker"] == {"name": "filetracker"}
    args = ["configure", "tracker", "--tracker", "mlflow", "--tracking-uri", "http://h:5000"]
    assert run_cli([*args, "--yes", "-C", str(made)]) == 0
    out = capsys.readouterr().out
    assert "Wrote conf/tracker/mlflow.yaml" in out
    assert "Default tracker is now 'mlflow' in: logistic_regression.yaml" in out
    assert _config(made)["tracker"] == {
        "name": "mlflow",
        "tracking_uri": "http://h:5000",
        "registry_uri": None,
    }
    text = (made / "conf/logistic_regression.yaml").read_text()
    assert "  - tracker: mlflow\n" in text and text.startswith("# Config of the")


def test_configure_by_kind_name_and_executor(
    made: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(made / "src")
    assert run_cli(["configure", "wandb", "--wandb-mode", "disabled", "--yes"]) == 0
    assert _config(made)["tracker"] == {
        "name": "wandb",
        "project": "shop",
        "entity": None,
        "mode": "disabled",
    }
    assert run_cli(["configure", "executor", "--executor", "parallel", "--workers", "3", "-y"]) == 0
    assert _config(made)["executor"] == {"name": "parallel", "workers": 3}
    assert run_cli(["configure", "executor", "--executor", "local", "-y"]) == 0
    assert _config(made)["executor"] == {"name": "local"}
    capsys.readouterr()


def test_configure_keeps_the_current_kind_as_the_default(made: Path) -> None:
    assert run_cli(["configure", "mlflow", "--yes", "-C", str(made)]) == 0
    assert run_cli(["configure", "tracker", "--registry-uri", "x://r", "-y", "-C", str(made)]) == 0
    assert _config(made)["tracker"] == {
        "name": "mlflow",
        "tracking_uri": ".qflow/tracker/mlflow",
        "registry_uri": "x://r",
    }


def test_configure_errors(made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["configure", "trackr", "-y", "-C", str(made)]) == 1
    err = capsys.readouterr().err
    assert "Unknown component 'trackr'. Configure one of: tracker, executor" in err
    assert "Did you mean: tracker, filetracker?" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(["configure", "tracker", "-y", "-C", str(empty)]) == 1
    assert "has no conf/ folder" in capsys.readouterr().err
    bad = ["configure", "executor", "--executor", "parallel", "--workers", "many", "-y"]
    assert run_cli([*bad, "-C", str(made)]) == 1
    assert "'many' is not a whole number" in capsys.readouterr().err
    assert yaml.safe_load((made / "conf/executor/parallel.yaml").read_text())["workers"] is None
