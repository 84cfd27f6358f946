from __future__ import annotations

from pathlib import Path

import pytest

from qflow.config.project import existing_project, find_project
from qflow.errors import NotAProjectError


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("QFLOW_STORE", "QFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "bare"
    folder.mkdir()
    return folder


def test_existing_project_outside_any_project_names_the_folder_and_the_fix(bare: Path) -> None:
    with pytest.raises(
        NotAProjectError,
        match=r"(?s)Not a QFlow project: '.*bare'\. .*Hint: cd into a project, pass --project",
    ) as raised:
        existing_project(bare)
    assert raised.value.folder == str(bare.resolve())
    assert find_project(bare).root == bare.resolve()
    assert list(bare.iterdir()) == []


def test_existing_project_of_a_missing_folder(bare: Path) -> None:
    with pytest.raises(NotAProjectError, match=r"nope'\. This folder does not exist"):
        existing_project(bare / "nope")


@pytest.mark.parametrize("marker", ["pyproject", "state"], ids=["tool.qflow", ".qflow"])
def test_existing_project_found_from_a_subfolder(bare: Path, marker: str) -> None:
    if marker == "pyproject":
        (bare / "pyproject.toml").write_text('[project]\nname = "p"\n[tool.qflow]\n')
    else:
        (bare / ".qflow").mkdir()
    (bare / "src" / "deep").mkdir(parents=True)
    assert existing_project(bare / "src" / "deep").root == bare.resolve()


def test_existing_project_accepts_a_store_named_in_the_environment(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QFLOW_STORE", f"sqlite:///{bare / 'elsewhere.db'}")
    assert existing_project(bare).root == bare.resolve()
