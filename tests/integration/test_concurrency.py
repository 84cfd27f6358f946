"""Many processes on one store: no "database is locked", no lost rows, migrations once
(issue 17: 16 processes logging into one run, first-open migrations racing)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.store import MetadataStore
from qflow.store.metadata.records import StepOutcome, StepStatus
from tests.fixtures import workflows as wf

pytestmark = pytest.mark.integration

PROCESSES = 16
BATCHES = 5
PER_BATCH = 100


def _open(url: str) -> str | None:
    """Open the store (the first opens of a new store race to migrate it)."""
    import sqlalchemy as sa

    store = MetadataStore(url)
    with store.engine.connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM qflow_schema_version")).scalar()
    store.dispose()
    return None if revision is None else str(revision)


def _log_into(url: str, artifacts: str, run_id: str, index: int) -> int:
    """One process of 16 logging into the same run: its own step run, metrics, params
    (step-level and the run's shared ones), tags and an output blob."""
    from qflow.store.artifacts import ArtifactStore

    store = MetadataStore(url)
    step = store.create_step_run(
        run_id=run_id, name=f"{index}_s", step="s", position=index, params={"i": index}
    )
    store.start_step_run(step)
    for batch in range(BATCHES):
        rows = [
            (run_id, step, "loss", float(index * 10_000 + batch * PER_BATCH + i), i, 0.0)
            for i in range(PER_BATCH)
        ]
        store.log_metrics(rows)
        store.log_params(run_id, {f"p{batch}": batch}, step_run_id=step)
        store.log_params(run_id, {"shared": "same", f"run{index}": batch // BATCHES})
        store.set_tags(run_id, {f"t{index}": str(batch), "last": "any"})
    ref = ArtifactStore(artifacts).put_bytes(index.to_bytes(2, "big") * 50_000)
    store.finish_step_run(step, StepOutcome(StepStatus.SUCCEEDED, outputs={"return": ref}))
    store.dispose()
    return step


def _many_processes(url: str, artifacts: Path) -> None:
    """16 processes open a new store at once (one migrates), then log into one run."""
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.doctor import check

    # forkserver: each process starts from one that imported the store once, not from scratch
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["qflow.store", "qflow.store.artifacts", __name__])
    with context.Pool(PROCESSES) as pool:
        revisions = pool.map(_open, [url] * PROCESSES)
        store = MetadataStore(url)
        run = store.create_run(workflow="w", config={})
        steps = pool.starmap(
            _log_into, [(url, str(artifacts), run.id, i) for i in range(PROCESSES)]
        )
    assert len(set(revisions)) == 1 and None not in revisions
    assert len(set(steps)) == PROCESSES
    store.finish_run(run.id, "succeeded")
    view = store.get_run(run.id)
    assert view.status == "succeeded"
    assert view.params == {
        "shared": "same",
        **{f"run{i}": 0 for i in range(PROCESSES)},
        **{f"p{b}": b for b in range(BATCHES)},
    }
    assert view.tags == {"last": "any", **{f"t{i}": str(BATCHES - 1) for i in range(PROCESSES)}}
    step_runs = store.step_runs(run.id)
    assert sorted(s.id for s in step_runs) == sorted(steps)
    assert {s.status for s in step_runs} == {"succeeded"}
    for index, step in enumerate(steps):
        points = store.metrics(run.id, "loss", step_run_id=step)
        assert sorted(m.value for m in points) == [
            float(index * 10_000 + n) for n in range(BATCHES * PER_BATCH)
        ]
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT count(*) FROM qflow_schema_version")).scalar()
        params = conn.execute(sa.text("SELECT count(*) FROM params")).scalar()
    assert versions == 1
    assert params == PROCESSES * BATCHES + 1 + PROCESSES
    problems, checked = check(store, ArtifactStore(str(artifacts)))
    assert problems == [] and checked >= PROCESSES
    store.dispose()


def test_sixteen_processes_log_into_one_run_on_a_new_sqlite_store(tmp_path: Path) -> None:
    _many_processes(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path / "artifacts")


@pytest.mark.postgres
def test_sixteen_processes_log_into_one_run_on_a_new_postgres_store(
    postgres_url: str, tmp_path: Path
) -> None:
    _many_processes(postgres_url, tmp_path / "artifacts")


def _run_workflow(project: str, n: int) -> str:
    return str(qf.run(wf.diamond, {"n": n, "factor": 0.5}, project_dir=project).id)


def test_two_runs_of_one_workflow_at_once_share_blobs(project: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        first, second = pool.starmap(_run_workflow, [(str(project), 3000), (str(project), 3000)])
    client = qf.Client(project)
    a, b = client.run(first), client.run(second)
    assert {a.status, b.status} == {"succeeded"}

    def outputs(run: Any) -> dict[str, str]:
        return {s.name: s.outputs["return"].key for s in run.steps}

    assert outputs(a) == outputs(b)
    root = project / ".qflow" / "artifacts"
    blobs = [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]
    assert len(blobs) == len({p.name for p in blobs})
    assert not [p for p in root.rglob("*") if p.is_file() and ".tmp" in p.parts]
