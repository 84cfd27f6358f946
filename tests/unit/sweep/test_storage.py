from __future__ import annotations

from pathlib import Path

import pytest

from qflow.store import MetadataStore
from qflow.sweep.storage import SCHEMA, SweepNotFoundError, open_storage, optuna_url, study_name

optuna = pytest.importorskip("optuna")


def test_sqlite_store_gets_a_sweeps_file_beside_it(tmp_path: Path) -> None:
    url, options = optuna_url(f"sqlite:///{tmp_path / '.qflow' / 'qflow.db'}")
    assert url == f"sqlite:///{tmp_path / '.qflow' / 'sweeps.db'}"
    assert options["connect_args"]["timeout"] == 60


def test_postgres_store_gets_a_schema() -> None:
    url, options = optuna_url("postgresql://me@db:5432/qflow")
    assert url == "postgresql+psycopg://me@db:5432/qflow"
    assert options["connect_args"]["options"] == f"-csearch_path={SCHEMA}"


def test_optuna_cannot_share_qflow_alembic_table(tmp_path: Path) -> None:
    """Why the storage is separate: in QFlow's own database Optuna refuses to start."""
    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    MetadataStore(url).dispose()
    with pytest.raises(RuntimeError, match="no longer compatible with the table schema"):
        optuna.storages.RDBStorage(url)


@pytest.mark.postgres
def test_postgres_schema_keeps_both_alembic_tables(postgres_url: str) -> None:
    import sqlalchemy as sa

    from qflow.store.metadata.store import normalize_url

    store = MetadataStore(postgres_url)
    storage = open_storage(postgres_url)
    optuna.create_study(storage=storage, study_name="s1")
    MetadataStore(postgres_url).dispose()  # QFlow still finds its schema at head
    engine = sa.create_engine(normalize_url(postgres_url))
    inspector = sa.inspect(engine)
    assert "alembic_version" in inspector.get_table_names()
    assert "studies" not in inspector.get_table_names()
    assert {"alembic_version", "studies", "trials"} <= set(inspector.get_table_names(SCHEMA))
    engine.dispose()
    store.dispose()
    assert study_name(storage, "s1") == "s1"


def test_study_lookup_by_prefix(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'qflow.db'}")
    for name in ("01abc", "01abd", "02xyz"):
        optuna.create_study(storage=storage, study_name=name)
    assert study_name(storage, "02") == "02xyz"
    assert study_name(storage, "01abc") == "01abc"
    with pytest.raises(SweepNotFoundError, match="ambiguous"):
        study_name(storage, "01ab")
    with pytest.raises(SweepNotFoundError, match=r"(?s)No sweep '03'.*qflow sweeps list"):
        study_name(storage, "03")
