from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from qflow.cli.app import run_cli
from tests.fixtures.models import features, trained

__all__ = ["trained"]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def test_register_list_show_alias_history(
    trained: tuple[Path, str], capsys: pytest.CaptureFixture[str], env: None
) -> None:
    project, run_id = trained
    p = ("-C", str(project))
    code, out, err = _cli(capsys, "models", "register", run_id[:10], "fit", "--name", "cancer", *p)
    assert code == 0, err
    assert "cancer" in out and "version 1" in out and "(pickle)" in out
    args = ("models", "register", run_id, "1_fit.return", "-n", "cancer", "--json", "--tag", "a=b")
    code, out, _ = _cli(capsys, *args, *p)
    assert json.loads(out)["version"] == 2 and json.loads(out)["tags"] == {"a": "b"}

    assert _cli(capsys, "models", "alias", "cancer", "production", "1", *p)[0] == 0
    code, out, _ = _cli(capsys, "models", "alias", "cancer", "production", "2", *p)
    assert "1 → 2" in out
    code, out, _ = _cli(capsys, "models", "history", "cancer", "--json", *p)
    assert [(c["previous_version"], c["version"]) for c in json.loads(out)] == [(None, 1), (1, 2)]

    assert _cli(capsys, "models", "describe", "cancer", "classifier", *p)[0] == 0
    code, out, _ = _cli(capsys, "models", "list", "--json", *p)
    listed = json.loads(out)
    assert listed[0]["aliases"] == {"production": 2} and listed[0]["latest_version"] == 2
    assert listed[0]["description"] == "classifier"

    code, out, _ = _cli(capsys, "models", "show", "cancer@production", *p)
    assert code == 0
    assert "version 2" in out and "pickled:     yes" in out and "mean radius: float" in out
    code, out, _ = _cli(capsys, "models", "show", "cancer", *p)
    assert "production" in out and "(pickle)" in out

    code, _, err = _cli(capsys, "models", "show", "cancer@prod", *p)
    assert code == 1 and "Did you mean: production?" in err


def test_predict_batch_in_chunks(
    trained: tuple[Path, str], capsys: pytest.CaptureFixture[str], env: None, tmp_path: Path
) -> None:
    project, run_id = trained
    p = ("-C", str(project))
    assert _cli(capsys, "models", "register", run_id, "fit", "--name", "cancer", *p)[0] == 0
    X = features(120)
    X.to_csv(tmp_path / "in.csv", index=False)
    out_path = tmp_path / "out.parquet"
    args = ("predict", "cancer", str(tmp_path / "in.csv"), "-o", str(out_path))
    code, out, err = _cli(capsys, *args, "--chunk-size", "50", *p)
    assert code == 0, err
    assert "120 predictions" in out
    result = pd.read_parquet(out_path)
    from qflow.registry.api import load

    assert result["prediction"].tolist() == load("cancer", project_dir=project).predict(X).tolist()
    assert list(result.columns[:-1]) == list(X.columns)

    bad = X.astype({"mean area": object})
    bad.loc[77, "mean area"] = "lots"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    args = ("predict", "cancer", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "b.csv"))
    code, _, err = _cli(capsys, *args, "--chunk-size", "50", *p)
    assert code == 1
    assert "'mean area'" in err and "rows 50–99" in err and "row 27" in err
    assert not (tmp_path / "b.csv").exists()
