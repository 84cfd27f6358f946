"""The SQL store's own behaviour: migrations, big batches, crash detection, pickling, URLs.
What every metadata store does is in tests/integration/store_contract."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from qflow.store import MetadataStore, default_store_url, open_stores


def _migration_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import qflow.store.metadata as package

    config = Config()
    config.set_main_option("script_location", str(Path(package.__file__).parent / "migrations"))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, "migrations must form one chain"
    return script.get_current_head()


def test_migrations_applied_on_first_use(metadata_store: MetadataStore) -> None:
    with metadata_store.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        revision = conn.execute(sa.text("SELECT version_num FROM qflow_schema_version")).scalar()
        artifact_columns = {c["name"] for c in sa.inspect(conn).get_columns("artifacts")}
    assert revision == _migration_head()
    assert "data" in artifact_columns
    assert {"runs", "step_runs", "artifacts", "step_io", "params", "metrics", "tags"} <= tables
    assert "run_artifacts" in tables
    reopened = MetadataStore(metadata_store.url)
    assert reopened.list_runs() == []
    reopened.dispose()


def test_100k_metrics_in_one_batch(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={})
    rows = [(run.id, None, "loss", 1.0 / (i + 1), i, float(i)) for i in range(100_000)]
    metadata_store.log_metrics(rows)
    metrics = metadata_store.metrics(run.id, "loss")
    assert len(metrics) == 100_000
    assert metrics[-1].value == 1.0 / 100_000 and metrics[-1].step == 99_999


def test_crashed_runs_are_detected(metadata_store: MetadataStore) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = metadata_store.create_run(workflow="w", config={})
    crashed = metadata_store.create_run(workflow="w", config={})
    silent = metadata_store.create_run(workflow="w", config={})
    with metadata_store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE runs SET pid = :pid WHERE id = :id"),
            {"pid": dead.pid, "id": crashed.id},
        )
        conn.execute(sa.text("UPDATE runs SET heartbeat_at = 0 WHERE id = :id"), {"id": silent.id})
    assert sorted(metadata_store.mark_crashed_runs()) == sorted([crashed.id, silent.id])
    assert metadata_store.get_run(crashed.id).status == "crashed"
    assert metadata_store.get_run(alive.id).status == "running"
    assert metadata_store.mark_crashed_runs() == []


def test_store_pickles_as_its_url(metadata_store: MetadataStore) -> None:
    clone = pickle.loads(pickle.dumps(metadata_store))
    assert clone.url == metadata_store.url and clone.list_runs() == []
    clone.dispose()


def test_default_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    assert default_store_url(tmp_path) == f"sqlite:///{tmp_path}/.qflow/qflow.db"
    metadata, artifacts = open_stores(tmp_path)
    assert (tmp_path / ".qflow" / "qflow.db").exists()
    assert artifacts.url == str(tmp_path / ".qflow" / "artifacts")
    metadata.dispose()
    monkeypatch.setenv("QFLOW_STORE", "postgres://u:secret@db/x")
    assert default_store_url(tmp_path) == "postgres://u:secret@db/x"
