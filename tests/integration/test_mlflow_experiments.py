"""Experiments created through MLflow's API on ``qflow server`` live in the metadata store:
MLflow's own client creates one, a restarted server and a second server process over the same
store find it by name. Migration 0011 (their table) up and down on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from qflow.store.metadata.database import MIGRATIONS, normalize_url
from qflow.store.metadata.store import SqlMetadataStore
from tests.fixtures.servers import qflow_server

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

TOKEN = "experiments-token"


def test_an_experiment_outlives_a_restart_and_is_shared_by_server_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    with qflow_server(tmp_path, TOKEN) as first:
        created = MlflowClient(first).create_experiment("churn", tags={"team": "growth"})
        assert created == "churn"
        with qflow_server(tmp_path, TOKEN) as second:  # another process, same store
            found = MlflowClient(second).get_experiment_by_name("churn")
            assert found is not None and found.tags == {"team": "growth"}
            with pytest.raises(MlflowException, match="already exists"):
                MlflowClient(second).create_experiment("churn")
    with qflow_server(tmp_path, TOKEN) as restarted:
        client = MlflowClient(restarted)
        found = client.get_experiment_by_name("churn")
        assert found is not None and found.experiment_id == "churn"
        assert found.tags == {"team": "growth"} and found.creation_time > 0
        names = [e.name for e in client.search_experiments()]
        assert names == ["Default", "churn"]
        run = client.create_run(found.experiment_id)  # the experiment takes its first run
        client.log_metric(run.info.run_id, "loss", 0.5)
        client.set_terminated(run.info.run_id)
        assert [r.info.run_id for r in client.search_runs(["churn"])] == [run.info.run_id]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database on 127.0.0.1:5432."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qflow.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _migrate(engine: sa.Engine, target: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, target)


def test_migration_0011_adds_and_removes_the_experiments_table(database_url: str) -> None:
    engine = sa.create_engine(normalize_url(database_url))
    try:
        _migrate(engine, "0010")
        assert "experiments" not in sa.inspect(engine).get_table_names()
        store = SqlMetadataStore(database_url)  # migrates to the newest schema
        assert store.create_experiment("churn", {"team": "growth"}) is True
        assert [(e.name, e.tags) for e in store.experiments()] == [("churn", {"team": "growth"})]
        store.dispose()
        _migrate(engine, "0010", down=True)
        assert "experiments" not in sa.inspect(engine).get_table_names()
        _migrate(engine, "head")
        assert "experiments" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
