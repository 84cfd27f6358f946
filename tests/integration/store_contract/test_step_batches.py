"""Contract: ``record_step_runs`` starts and finishes many step runs in one call, exactly as
``start_step_run`` and ``finish_step_run`` would one by one (the scheduler records mapped
items this way)."""

from __future__ import annotations

import hashlib

import pytest

from qflow.store.artifacts import ArtifactRef
from qflow.store.contract import MetadataStore
from qflow.store.metadata.records import StepOutcome, StepStart, StepStatus

pytestmark = pytest.mark.integration


def inline(data: bytes) -> ArtifactRef:
    return ArtifactRef(
        hashlib.sha256(data).hexdigest(), "json", len(data), "builtins.int", False, data
    )


def test_a_batch_starts_and_finishes_step_runs(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    entries = [{"name": f"1_f[{i}]", "step": "f", "position": 1, "params": {}} for i in range(4)]
    source, *items = store.create_step_runs(
        run.id, [{"name": "0_src", "step": "f", "position": 0, "params": {}}, *entries]
    )
    store.finish_step_run(
        source, StepOutcome(StepStatus.SUCCEEDED, outputs={"return": inline(b"7")})
    )
    store.log_metrics([(run.id, source, "loss", 0.5, None, 1000.0)])
    first, second, third, fourth = items
    store.record_step_runs(
        started=[
            StepStart(first, cache_key=unique + "k0", fingerprint="fp", reason="first run"),
            StepStart(second, started_at=100.0),
            StepStart(fourth),
        ],
        finished=[
            (first, StepOutcome(StepStatus.SUCCEEDED, outputs={"return": inline(b"1")},
                                inputs={"x": inline(b"0")}, started_at=50.0, ended_at=60.0)),
            (third, StepOutcome(StepStatus.CACHED, outputs={"return": inline(b"7")},
                                cached_from=source, copy_records_from=source, attempts=0)),
            (first, StepOutcome(StepStatus.FAILED, error="late")),  # the first outcome stands
        ],
    )  # fmt: skip
    by_id = {s.id: s for s in store.step_runs(run.id)}
    done = by_id[first]
    assert done.status is StepStatus.SUCCEEDED
    assert (done.cache_key, done.fingerprint, done.reason) == (unique + "k0", "fp", "first run")
    assert (done.started_at, done.ended_at) == (50.0, 60.0)
    assert done.outputs["return"].inline == b"1" and done.inputs["x"].inline == b"0"
    assert by_id[second].status is StepStatus.RUNNING and by_id[second].started_at == 100.0
    assert by_id[fourth].status is StepStatus.RUNNING
    cached = by_id[third]
    assert cached.status is StepStatus.CACHED and cached.cached_from == source
    assert [m.value for m in store.metrics(run.id, "loss", step_run_id=third)] == [0.5]

    # sent again (its answer lost), and a start after the end: nothing moves or doubles
    store.record_step_runs(
        started=[StepStart(first), StepStart(third)],
        finished=[(third, StepOutcome(StepStatus.CACHED, copy_records_from=source, attempts=0))],
    )
    store.record_step_runs(
        finished=[(second, StepOutcome(StepStatus.FAILED, error="ValueError: no", attempts=2))]
    )
    store.record_step_runs()
    again = {s.id: s for s in store.step_runs(run.id)}
    assert again[first].status is StepStatus.SUCCEEDED and again[first].started_at == 50.0
    assert again[third].status is StepStatus.CACHED
    assert len(store.metrics(run.id, "loss", step_run_id=third)) == 1
    failed = again[second]
    assert (failed.status, failed.error, failed.attempts) == (
        StepStatus.FAILED,
        "ValueError: no",
        2,
    )
    assert failed.started_at == 100.0  # kept from its start
