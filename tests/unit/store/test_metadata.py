from __future__ import annotations

import math
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from qflow.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
    RunNotFoundError,
    StepNotFoundError,
)
from qflow.store import ArtifactRef, MetadataStore, default_store_url, open_stores

EXACT = [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.1]


def _bits(value: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", value))[0])


def _ref(char: str, serializer: str = "json") -> ArtifactRef:
    return ArtifactRef(char * 64, serializer, 10, "builtins.dict", False)


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


def test_run_create_finish_and_lookup(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(
        workflow="train", config={"model": {"C": 0.5}}, command="qflow run train", meta={"a": 1}
    )
    assert run.status == "running" and run.pid is not None and run.host
    metadata_store.finish_run(run.id, "succeeded")
    loaded = metadata_store.get_run(run.id)
    assert loaded.status == "succeeded" and loaded.ended_at is not None
    assert loaded.config == {"model": {"C": 0.5}} and loaded.meta == {"a": 1}
    assert loaded.command == "qflow run train"
    assert metadata_store.get_run(run.id[:10]).id == run.id
    assert metadata_store.get_run(run.id[:10].upper()).id == run.id
    other = metadata_store.create_run(workflow="eval", config={})
    assert [r.id for r in metadata_store.list_runs()] == [other.id, run.id]
    assert [r.id for r in metadata_store.list_runs(workflow="train")] == [run.id]
    assert [r.id for r in metadata_store.list_runs(status="running")] == [other.id]
    assert metadata_store.workflows() == ["eval", "train"]


def test_unknown_and_ambiguous_run_ids(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={}, run_id="01aaaaaaaaaaaaaaaaaaaaaaaa")
    metadata_store.create_run(workflow="w", config={}, run_id="01aaaaaaaaaaaaaaaaaaaaaaab")
    with pytest.raises(
        RunNotFoundError,
        match=rf"No run with id '01aaaaaaaaaaaaaaaaaaaaaaac'.\n"
        rf"Did you mean: .*{run.id}",
    ):
        metadata_store.get_run("01aaaaaaaaaaaaaaaaaaaaaaac")
    with pytest.raises(RunNotFoundError, match="matches several runs"):
        metadata_store.get_run("01a")


def test_step_runs_record_lineage(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={})
    load = metadata_store.create_step_run(
        run_id=run.id, name="0_load", step="load", position=0, params={}, cache_key="k1"
    )
    fit = metadata_store.create_step_run(
        run_id=run.id, name="1_fit", step="fit", position=1, params={"C": 1.0}
    )
    metadata_store.start_step_run(load)
    metadata_store.finish_step_run(load, status="succeeded", outputs={"data": _ref("a")})
    metadata_store.start_step_run(fit)
    metadata_store.finish_step_run(
        fit,
        status="failed",
        inputs={"X": _ref("a")},
        outputs={},
        error="ValueError: bad",
        traceback="Traceback…",
        stdout="out",
        stderr="err",
        attempts=3,
    )
    steps = metadata_store.step_runs(run.id)
    assert [s.name for s in steps] == ["0_load", "1_fit"]
    assert steps[0].outputs == {"data": _ref("a")} and steps[0].duration is not None
    assert steps[1].inputs == {"X": _ref("a")} and steps[1].params == {"C": 1.0}
    assert (steps[1].status, steps[1].attempts, steps[1].stderr) == ("failed", 3, "err")
    assert metadata_store.get_step_run(run.id, "fit").id == fit
    assert metadata_store.get_step_run(run.id, "0_load").id == load
    with pytest.raises(StepNotFoundError, match=r"has no step 'fitt'.\nDid you mean: .*fit"):
        metadata_store.get_step_run(run.id, "fitt")
    metadata_store.start_step_run(load)  # a retry must keep the cache key set at creation
    metadata_store.finish_step_run(load, status="succeeded", outputs={"data": _ref("a")})
    cached = metadata_store.find_cached("k1")
    assert cached is not None and cached.id == load and cached.outputs == {"data": _ref("a")}
    assert metadata_store.find_cached("missing") is None
    assert metadata_store.get_artifact("a" * 64) == _ref("a")
    with pytest.raises(ArtifactNotFoundError, match="No artifact with key"):
        metadata_store.get_artifact("f" * 64)


def test_metrics_round_trip_exactly(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={})
    now = time.time()
    metadata_store.log_metrics([(run.id, None, "x", v, i, now) for i, v in enumerate(EXACT)])
    metrics = metadata_store.metrics(run.id, "x")
    assert [_bits(m.value) for m in metrics] == [_bits(v) for v in EXACT]
    assert math.copysign(1.0, metrics[3].value) == -1.0
    assert [m.step for m in metrics] == list(range(len(EXACT)))
    assert metadata_store.get_run(run.id).metrics_summary == {"x": 0.1}
    with metadata_store.engine.connect() as conn:
        nulls = conn.execute(sa.text("SELECT count(*) FROM metrics WHERE value IS NULL")).scalar()
    assert nulls == 1
    with pytest.raises(InvalidValueError, match="Metric 'bad' has the value 'high'"):
        metadata_store.log_metrics([(run.id, None, "bad", "high", None, now)])  # type: ignore[list-item]


def test_100k_metrics_in_one_batch(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={})
    rows = [(run.id, None, "loss", 1.0 / (i + 1), i, float(i)) for i in range(100_000)]
    metadata_store.log_metrics(rows)
    metrics = metadata_store.metrics(run.id, "loss")
    assert len(metrics) == 100_000
    assert metrics[-1].value == 1.0 / 100_000 and metrics[-1].step == 99_999


def test_params_conflict_and_tags(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={})
    metadata_store.log_params(run.id, {"lr": 0.1, "layers": [64, 32]})
    metadata_store.log_params(run.id, {"lr": 0.1})
    with pytest.raises(InvalidValueError, match=r"Param 'lr' is already 0.1 .* to 0.2"):
        metadata_store.log_params(run.id, {"lr": 0.2})
    step = metadata_store.create_step_run(
        run_id=run.id, name="0_s", step="s", position=0, params={}
    )
    metadata_store.log_params(run.id, {"lr": 0.5}, step_run_id=step)
    metadata_store.set_tags(run.id, {"team": "a", "stage": "dev"})
    metadata_store.set_tags(run.id, {"stage": "prod"})
    loaded = metadata_store.get_run(run.id)
    assert loaded.params == {"lr": 0.1, "layers": [64, 32]}
    assert loaded.tags == {"team": "a", "stage": "prod"}
    assert [r.id for r in metadata_store.list_runs(tags={"stage": "prod"})] == [run.id]
    assert metadata_store.list_runs(tags={"stage": "dev"}) == []


def test_logged_artifacts(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="w", config={})
    metadata_store.log_run_artifact(run.id, "plots/loss.png", _ref("b", "file"))
    metadata_store.log_run_artifact(run.id, "plots/loss.png", _ref("c", "file"))
    [logged] = metadata_store.run_artifacts(run.id)
    assert (logged.name, logged.ref, logged.step_run_id) == (
        "plots/loss.png",
        _ref("c", "file"),
        None,
    )


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


def test_unicode_and_long_names_stored_exactly(metadata_store: MetadataStore) -> None:
    run = metadata_store.create_run(workflow="обучение_模型", config={"ключ": "値 🚀"})
    long_key = "k" * 250
    name = "μ/σ ✓ " + "é" * 200
    metadata_store.log_params(run.id, {long_key: "v", name: 1})
    metadata_store.set_tags(run.id, {name: "🚀" * 300})
    metadata_store.log_metrics([(run.id, None, name, 1.0, None, 0.0)])
    loaded = metadata_store.get_run(run.id)
    assert loaded.workflow == "обучение_模型" and loaded.config == {"ключ": "値 🚀"}
    assert loaded.params == {long_key: "v", name: 1}
    assert loaded.tags == {name: "🚀" * 300}
    assert [m.key for m in metadata_store.metrics(run.id)] == [name]


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
