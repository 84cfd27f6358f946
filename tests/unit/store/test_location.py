from __future__ import annotations

from pathlib import Path

import pytest

from qflow.store.location import EMPTY_STORE_URL, open_stores


def test_reading_a_project_without_a_store_writes_nothing(project: Path) -> None:
    metadata, _ = open_stores(project, create=False)
    assert metadata.url == EMPTY_STORE_URL
    assert metadata.list_runs(limit=5) == []
    assert not (project / ".qflow").exists()


def test_reading_an_existing_store_uses_it(project: Path) -> None:
    written, _ = open_stores(project)
    written.list_runs(limit=1)
    assert (project / ".qflow" / "qflow.db").is_file()
    metadata, _ = open_stores(project, create=False)
    assert metadata.url.endswith("qflow.db")


def test_reading_a_missing_store_named_in_the_environment_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = project / "other" / "runs.db"
    monkeypatch.setenv("QFLOW_STORE", f"sqlite:///{target}")
    metadata, _ = open_stores(project, create=False)
    assert metadata.url == EMPTY_STORE_URL
    assert not (project / "other").exists()
