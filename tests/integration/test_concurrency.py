"""Many processes on one store: no "database is locked", no lost rows, migrations once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.store import MetadataStore
from tests.fixtures import workflows as wf

pytestmark = pytest.mark.integration

PROCESSES = 8
BATCHES = 20
PER_BATCH = 100


def _log_from_a_process(url: str, index: int) -> str:
    store = MetadataStore(url)
    run = store.create_run(workflow=f"w{index % 2}", config={"i": index})
    step = store.create_step_run(run_id=run.id, name="0_s", step="s", position=0, params={})
    for batch in range(BATCHES):
        rows = [
            (run.id, step, "loss", float(i), batch * PER_BATCH + i, 0.0) for i in range(PER_BATCH)
        ]
        store.log_metrics(rows)
        store.log_params(run.id, {f"p{batch}": batch}, step_run_id=step)
        store.set_tags(run.id, {"batch": str(batch)})
    store.finish_step_run(step, status="succeeded")
    store.finish_run(run.id, "succeeded")
    store.dispose()
    return run.id


def _many_processes(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        run_ids = pool.starmap(_log_from_a_process, [(url, i) for i in range(PROCESSES)])
    store = MetadataStore(url)
    assert len(set(run_ids)) == PROCESSES
    for run_id in run_ids:
        assert len(store.metrics(run_id, "loss")) == BATCHES * PER_BATCH
        run = store.get_run(run_id)
        assert run.status == "succeeded"
        assert run.params == {f"p{b}": b for b in range(BATCHES)}
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        versions = conn.execute(sa.text("SELECT count(*) FROM qflow_schema_version")).scalar()
    assert versions == 1
    store.dispose()


def test_eight_processes_on_a_new_sqlite_store(tmp_path: Path) -> None:
    _many_processes(f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.postgres
def test_eight_processes_on_a_new_postgres_store(postgres_url: str) -> None:
    _many_processes(postgres_url)


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
