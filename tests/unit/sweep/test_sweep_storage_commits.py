"""Optuna's connections to a SQLite store commit as QFlow's own: WAL, synchronous=NORMAL."""

from __future__ import annotations

from pathlib import Path

import pytest

from qflow.store import MetadataStore
from qflow.sweep.storage import open_storage

optuna = pytest.importorskip("optuna")


@pytest.mark.parametrize("qflow_first", [True, False])
def test_sweep_storage_commits_like_the_metadata_store(tmp_path: Path, qflow_first: bool) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / '.qflow' / 'qflow.db'}"
    if qflow_first:
        MetadataStore(url).dispose()
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=f"s-{qflow_first}")
    study.tell(study.ask(), 1.0)
    with storage.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    assert [
        t.value for t in optuna.load_study(study_name=study.study_name, storage=url).trials
    ] == [1.0]
