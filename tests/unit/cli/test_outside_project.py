from __future__ import annotations

from pathlib import Path

import pytest

from qflow.cli.app import run_cli

READ_COMMANDS = [
    ["runs"],
    ["runs", "--json"],
    ["show", "01ABC"],
    ["logs", "01ABC"],
    ["diff", "A", "B"],
    ["compare", "A", "B"],
    ["lineage", "01ABC", "1_fit"],
    ["metrics", "accuracy"],
    ["models", "list"],
    ["models", "show", "churn"],
    ["gc", "--dry-run"],
    ["doctor"],
    ["report", "01ABC"],
    ["ui", "--port", "1"],
    ["sweeps", "list"],
    ["sweeps", "show", "01ABC"],
]


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("QFLOW_STORE", "QFLOW_TRACKING_URI", "QFLOW_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "not_a_project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return folder


@pytest.mark.parametrize("args", READ_COMMANDS, ids=[" ".join(a) for a in READ_COMMANDS])
def test_read_command_outside_a_project_fails_and_writes_nothing(
    outside: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = run_cli(args)
    err = capsys.readouterr().err
    assert code == 1
    assert f"Not a QFlow project: '{outside.resolve()}'" in err
    assert "Hint: cd into a project, pass --project, or run qflow new" in err
    assert "Traceback" not in err
    assert list(outside.iterdir()) == []


def test_project_option_naming_a_missing_folder(
    outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["runs", "--project", str(outside / "typo")]) == 1
    assert "typo'. This folder does not exist" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_read_command_in_a_fresh_project_shows_nothing_and_writes_nothing(
    outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (outside / "pyproject.toml").write_text('[project]\nname = "fresh"\n[tool.qflow]\n')
    assert run_cli(["runs"]) == 0
    assert run_cli(["models", "list"]) == 0
    assert run_cli(["sweeps", "list"]) == 0
    assert "No runs yet" in capsys.readouterr().err
    assert sorted(p.name for p in outside.iterdir()) == ["pyproject.toml"]


def test_read_command_with_a_store_in_the_environment(
    outside: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qflow.store.metadata.store import MetadataStore

    url = f"sqlite:///{outside.parent / 'shared.db'}"
    MetadataStore(url).list_runs(limit=1)
    monkeypatch.setenv("QFLOW_STORE", url)
    assert run_cli(["runs", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert list(outside.iterdir()) == []
