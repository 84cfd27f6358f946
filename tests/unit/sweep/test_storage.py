from __future__ import annotations

from pathlib import Path

import pytest

from qflow.store import MetadataStore
from qflow.sweep.storage import SweepNotFoundError, open_storage, optuna_url, study_name

optuna = pytest.importorskip("optuna")


def test_sqlite_store_holds_the_studies(tmp_path: Path) -> None:
    url, options = optuna_url(f"sqlite:///{tmp_path / '.qflow' / 'qflow.db'}")
    assert url == f"sqlite:///{tmp_path / '.qflow' / 'qflow.db'}"
    assert options["connect_args"]["timeout"] == 60


def test_postgres_store_holds_the_studies() -> None:
    url, options = optuna_url("postgresql://me@db:5432/qflow")
    assert url == "postgresql+psycopg://me@db:5432/qflow"
    assert options == {"pool_pre_ping": True}


def _shares_one_database(url: str) -> None:
    import sqlalchemy as sa

    from qflow.store.metadata.schema import VERSION_TABLE
    from qflow.store.metadata.store import normalize_url

    MetadataStore(url).dispose()
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s1")
    reopened = MetadataStore(url)  # QFlow still finds its schema at head
    assert reopened.list_runs() == []
    reopened.dispose()
    engine = sa.create_engine(normalize_url(url))
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {VERSION_TABLE, "alembic_version", "studies", "trials", "runs"} <= tables
    assert study_name(storage, "s1") == "s1"


def test_optuna_and_qflow_share_one_sqlite_database(tmp_path: Path) -> None:
    _shares_one_database(f"sqlite:///{tmp_path / 'qflow.db'}")


@pytest.mark.postgres
def test_optuna_and_qflow_share_one_postgres_database(postgres_url: str) -> None:
    _shares_one_database(postgres_url)


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
