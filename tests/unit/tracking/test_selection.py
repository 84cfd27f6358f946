from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qflow.errors import ConfigError, MissingExtraError
from qflow.integrations.mlflow import MlflowTracker, masked, resolve_tracking_uri
from qflow.integrations.wandb import WandbTracker
from qflow.runtime.trackers import known_trackers, trackers_from_config


def test_filetracker_is_the_default_and_needs_no_plugin(tmp_path: Path) -> None:
    assert trackers_from_config({}, tmp_path) == []
    assert trackers_from_config({"tracker": "filetracker"}, tmp_path) == []
    assert trackers_from_config({"tracker": None}, tmp_path) == []


def test_names_lists_and_tables(tmp_path: Path) -> None:
    (mlflow,) = trackers_from_config({"tracker": "mlflow"}, tmp_path)
    assert isinstance(mlflow, MlflowTracker)
    assert mlflow.tracking_uri == f"sqlite:///{tmp_path / '.qflow/tracker/mlflow/mlflow.db'}"
    both = trackers_from_config({"tracker": ["filetracker", "mlflow", "wandb"]}, tmp_path)
    assert [type(t) for t in both] == [MlflowTracker, WandbTracker]
    table = {"name": "mlflow", "tracking_uri": "runs/ml", "experiment": "churn"}
    (custom,) = trackers_from_config({"tracker": [table]}, tmp_path)
    assert isinstance(custom, MlflowTracker)
    assert custom.tracking_uri == f"sqlite:///{tmp_path / 'runs/ml/mlflow.db'}"
    assert custom.experiment == "churn"
    (wandb,) = trackers_from_config({"tracker": {"name": "wandb", "mode": "offline"}}, tmp_path)
    assert isinstance(wandb, WandbTracker) and wandb.dir == tmp_path / ".qflow/tracker/wandb"
    assert not (tmp_path / ".qflow").exists(), "nothing is created before a run starts"


def test_tracking_uris_resolve_against_the_project(tmp_path: Path) -> None:
    assert resolve_tracking_uri("sqlite:///db/m.db", tmp_path) == (
        f"sqlite:///{tmp_path / 'db/m.db'}",
        tmp_path / "db",
    )
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == (
        "http://127.0.0.1:5000",
        None,
    )
    assert resolve_tracking_uri("/abs/store", tmp_path)[0] == "sqlite:////abs/store/mlflow.db"
    assert masked("https://me:secret@host/x") == "https://me:***@host/x"


def test_unknown_tracker_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown tracker 'mlfow'.*filetracker, mlflow, wandb"):
        trackers_from_config({"tracker": "mlfow"}, tmp_path)
    with pytest.raises(ConfigError, match=r"Did you mean: mlflow\?"):
        trackers_from_config({"tracker": ["filetracker", "mlfow"]}, tmp_path)
    assert known_trackers()[:3] == ["filetracker", "mlflow", "wandb"]


def test_bad_options_and_shapes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"(?s)option .trackin_uri.*mean: tracking_uri"):
        trackers_from_config({"tracker": {"name": "mlflow", "trackin_uri": "x"}}, tmp_path)
    with pytest.raises(ConfigError, match="has no name"):
        trackers_from_config({"tracker": [{"tracking_uri": "x"}]}, tmp_path)
    with pytest.raises(ConfigError, match="must be a tracker name"):
        trackers_from_config({"tracker": 3}, tmp_path)
    with pytest.raises(ConfigError, match="takes no options"):
        trackers_from_config({"tracker": {"name": "filetracker", "path": "x"}}, tmp_path)
    with pytest.raises(ConfigError, match="mode is 'sometimes'"):
        trackers_from_config({"tracker": {"name": "wandb", "mode": "sometimes"}}, tmp_path)


def test_missing_package_gives_the_pip_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'qflow-framework\[mlflow\]'"):
        trackers_from_config({"tracker": "mlflow"}, tmp_path)


def test_selecting_a_tracker_does_not_import_it(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from pathlib import Path; from qflow.runtime.trackers import "
        "trackers_from_config as t; t({'tracker': ['mlflow', 'wandb']}, Path('.')); "
        "print('mlflow' in sys.modules, 'wandb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
