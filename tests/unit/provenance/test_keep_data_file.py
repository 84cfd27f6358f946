"""`qf.DataFile(path, keep=True)` (or `[tool.qflow] keep-data-files`) keeps the file's content
in the artifact store up to `keep-data-max` bytes, and `qflow reproduce` restores it."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qflow.cli.app import run_cli

FLOWS = """
import qflow as qf


@qf.step
def count_rows(path: qf.DataFile) -> int:
    with open(path, encoding="utf-8") as file:
        return len(file.read().splitlines())


@qf.workflow
def counted(path: str = "data/rows.csv"):
    return count_rows(qf.DataFile(path, keep=True))


@qf.workflow
def plain(path: str = "data/rows.csv"):
    return count_rows(path)
"""


def _project(root: Path, setting: str = "") -> Path:
    (root / "pyproject.toml").write_text(
        f'[tool.qflow]\nworkflow-modules = ["keepflows"]\n{setting}', encoding="utf-8"
    )
    (root / "keepflows.py").write_text(FLOWS, encoding="utf-8")
    (root / "data").mkdir()
    (root / "data" / "rows.csv").write_text("a\nb\nc\n", encoding="utf-8")
    return root


@pytest.fixture
def chdir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.syspath_prepend(str(project))
    yield project
    sys.modules.pop("keepflows", None)


def _run(workflow: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert run_cli(["run", workflow]) == 0
    found = re.search(r"Run (\w+) succeeded", capsys.readouterr().out)
    assert found
    return found.group(1)


def _kept(run_id: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert run_cli(["show", run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    return [a["name"] for a in shown.get("artifacts", []) if a["name"].startswith("data:")]


def test_a_kept_data_file_is_restored_by_reproduce(
    chdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(chdir)
    run_id = _run("counted", capsys)
    data = chdir / "data" / "rows.csv"
    assert _kept(run_id, capsys) == ["data:data/rows.csv"]

    data.write_text("a\nb\nc\nd\ne\n", encoding="utf-8")  # the data changed since the run
    assert run_cli(["reproduce", run_id]) == 0
    captured = capsys.readouterr()
    assert "identical outputs" in captured.out
    assert "changed since the run: the run's copy was used" in " ".join(captured.err.split())
    assert data.read_text(encoding="utf-8") == "a\nb\nc\nd\ne\n"  # the user's version is back

    data.unlink()  # and gone
    assert run_cli(["reproduce", run_id]) == 0
    captured = capsys.readouterr()
    assert "identical outputs" in captured.out
    assert "was missing: restored from the run's copy" in " ".join(captured.err.split())
    assert data.read_text(encoding="utf-8") == "a\nb\nc\n"


def test_the_project_setting_keeps_every_data_file_up_to_the_limit(
    chdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(chdir, "keep-data-files = true\nkeep-data-max = 5\n")
    run_id = _run("plain", capsys)  # 6 bytes: over the limit
    assert _kept(run_id, capsys) == []
    assert run_cli(["logs", run_id, "0_count_rows"]) == 0
    assert "is over keep-data-max (5 bytes)" in " ".join(capsys.readouterr().out.split())

    (chdir / "pyproject.toml").write_text(  # no limit: the default, 100 MB
        '[tool.qflow]\nworkflow-modules = ["keepflows"]\nkeep-data-files = true\n'
    )
    assert run_cli(["run", "plain", "--rerun", "count_rows"]) == 0
    run_id = re.search(r"Run (\w+) succeeded", capsys.readouterr().out).group(1)  # type: ignore[union-attr]
    assert len(_kept(run_id, capsys)) == 1
