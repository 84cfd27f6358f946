from __future__ import annotations

import json
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.provenance import gc, metrics_across
from qflow.provenance.script import exec_script
from qflow.store import open_stores
from qflow.store.metadata.records import StepOutcome, StepStatus


def test_metric_across_runs_table_json_and_plot(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    (project / "fit.py").write_text(
        "import sys\nimport qflow as qf\nlr = float(sys.argv[1])\n"
        "for epoch in range(3):\n    qf.log_metric('loss', lr / (epoch + 1), step=epoch)\n"
    )
    (project / "other.py").write_text("print('no metrics')\n")
    ids = [exec_script("fit.py", [lr], project_dir=project).run_id for lr in ("1", "2")]
    exec_script("other.py", project_dir=project)
    capsys.readouterr()
    metadata, _ = open_stores(project)
    rows = metrics_across.metric_across(metadata, "loss")
    assert [r["run_id"] for r in rows] == ids
    assert [r["value"] for r in rows] == [1 / 3, 2 / 3]
    assert rows[1]["min"] == 2 / 3 and rows[1]["max"] == 2.0 and rows[1]["points"] == 3
    assert list(metrics_across.to_pandas(rows)["value"]) == [1 / 3, 2 / 3]

    assert run_cli(["metrics", "loss", "--workflow", "fit.py", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == ids
    chart = project / "charts" / "loss.png"
    assert run_cli(["metrics", "loss", "--runs", ids[1], "--plot", str(chart)]) == 0
    out = capsys.readouterr().out
    assert ids[1] in out and ids[0] not in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_cli(["metrics", "nope", "--plot", str(chart)]) == 1
    assert "No run logged metric 'nope'" in capsys.readouterr().err


def _blob_keys(project: Path) -> set[str]:
    root = project / ".qflow" / "artifacts"
    return {p.name for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts}


def test_gc_deletes_only_unreferenced_artifacts(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np = pytest.importorskip("numpy")

    @qf.step
    def big(n: int) -> object:
        return np.arange(n, dtype=np.float64)

    @qf.workflow
    def arrays(n: int = 100_000) -> object:
        return big(n)

    kept_run = qf.run(arrays, {"n": 100_000}, project_dir=project)
    gone_run = qf.run(arrays, {"n": 50_000}, project_dir=project)
    metadata, artifacts = open_stores(project)
    kept_key = kept_run.step("big").outputs["return"].key
    gone_key = gone_run.step("big").outputs["return"].key
    gone_size = gone_run.step("big").outputs["return"].size
    stray = artifacts.put_bytes(b"x" * 1000)  # written, never recorded
    assert {kept_key, gone_key, stray.key} <= _blob_keys(project)
    with metadata.engine.begin() as conn:
        import sqlalchemy as sa

        conn.execute(sa.text("DELETE FROM runs WHERE id = :id"), {"id": gone_run.id})

    young = gc.collect(metadata, artifacts, dry_run=True)
    assert young.blobs == 0 and young.kept == 2
    dry = gc.collect(metadata, artifacts, dry_run=True, min_age=0)
    assert dry.blobs == 2 and sorted(dry.keys) == sorted([gone_key, stray.key])
    assert dry.blob_bytes == gone_size + 1000
    assert {gone_key, stray.key} <= _blob_keys(project)

    assert run_cli(["gc", "--min-age", "0", "--json", "-C", str(project)]) == 0
    freed = json.loads(capsys.readouterr().out)
    assert freed["blobs"] == 2 and freed["freed_bytes"] >= dry.blob_bytes
    assert kept_key in _blob_keys(project)
    assert gone_key not in _blob_keys(project) and stray.key not in _blob_keys(project)
    assert float(qf.Client(project).run(kept_run.id).step("big").load().sum()) > 0
    assert run_cli(["gc", "--dry-run", "--min-age", "0", "-C", str(project)]) == 0
    assert "Would free 0 B: 0 blobs" in capsys.readouterr().out


def test_gc_keeps_model_versions_when_the_registry_table_exists(project: Path) -> None:
    import sqlalchemy as sa

    metadata, artifacts = open_stores(project)
    ref = artifacts.put_bytes(b"model bytes" * 100)
    with metadata.engine.connect() as conn:
        has_registry = "model_versions" in sa.inspect(conn).get_table_names()
    if not has_registry:
        pytest.skip("the model registry tables are not in this schema")
    run = metadata.create_run(workflow="w", config={})
    sr = metadata.create_step_run(run_id=run.id, name="0_fit", step="fit", position=0, params={})
    metadata.finish_step_run(sr, StepOutcome(StepStatus.SUCCEEDED, outputs={"return": ref}))
    with metadata.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM step_io"))
        conn.execute(sa.text("INSERT INTO registered_models (name, created_at) VALUES ('m', 0)"))
        conn.execute(
            sa.text(
                "INSERT INTO model_versions (name, version, run_id, step_run_id, step, output,"
                " artifact_key, environment, environment_hash, created_at, pickled)"
                " VALUES ('m', 1, :run, :sr, 'fit', 'return', :key, '{}', '', 0, false)"
            ),
            {"run": run.id, "sr": sr, "key": ref.key},
        )
    assert ref.key in gc.referenced_keys(metadata)
    assert gc.collect(metadata, artifacts, min_age=0).blobs == 0
    assert artifacts.exists(ref.key)
