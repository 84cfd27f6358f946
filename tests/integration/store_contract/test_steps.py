"""Contract: step runs (``StepRunStore``): lifecycle, lineage, cache lookups, data files."""

from __future__ import annotations

import hashlib

import pytest

from qflow.errors import ArtifactNotFoundError, InvalidValueError, StepNotFoundError
from qflow.store.artifacts import ArtifactRef
from qflow.store.contract import MetadataStore
from qflow.store.metadata.records import DataFileRecord, StepOutcome, StepStatus

pytestmark = pytest.mark.integration


def ref(seed: str, serializer: str = "json", size: int = 10) -> ArtifactRef:
    key = hashlib.sha256(seed.encode()).hexdigest()
    return ArtifactRef(key, serializer, size, "builtins.dict", False)


def inline(data: bytes) -> ArtifactRef:
    return ArtifactRef(
        hashlib.sha256(data).hexdigest(), "bytes", len(data), "builtins.bytes", False, data
    )


def test_step_runs_record_outcome_and_lineage(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    load, fit = store.create_step_runs(
        run.id,
        [
            {"name": "0_load", "step": "load", "position": 0, "params": {}, "source": "def f(): 1"},
            {"name": "1_fit", "step": "fit", "position": 1, "params": {"C": 1.0}},
        ],
    )
    data = ref(unique + "data")
    small = inline(b"tiny output")
    store.start_step_run(load, cache_key=unique + "k1", fingerprint="fp", reason="first run")
    store.finish_step_run(
        load, StepOutcome(StepStatus.SUCCEEDED, outputs={"data": data, "small": small})
    )
    store.start_step_run(fit)
    store.finish_step_run(
        fit,
        StepOutcome(
            StepStatus.FAILED,
            inputs={"X": data},
            error="ValueError: bad",
            traceback="Traceback…",
            stdout="out",
            stderr="err",
            attempts=3,
        ),
    )
    store.finish_step_run(
        fit, StepOutcome(StepStatus.SUCCEEDED)
    )  # a finished step run keeps its outcome
    steps = store.step_runs(run.id)
    assert [s.name for s in steps] == ["0_load", "1_fit"]
    assert steps[0].outputs == {"data": data, "small": small}
    assert (steps[0].cache_key, steps[0].fingerprint, steps[0].reason) == (
        unique + "k1",
        "fp",
        "first run",
    )
    assert steps[0].source_key is not None and store.source(steps[0].source_key) == "def f(): 1"
    assert steps[1].inputs == {"X": data} and steps[1].params == {"C": 1.0}
    assert (steps[1].status, steps[1].attempts, steps[1].stdout, steps[1].stderr) == (
        "failed",
        3,
        "out",
        "err",
    )
    assert store.get_step_run(run.id, "fit").id == fit
    assert store.get_step_run(run.id, "0_load").id == load
    by_id = store.step_run_by_id(fit)
    assert by_id is not None and (by_id.run_id, by_id.name) == (run.id, "1_fit")
    assert store.step_run_by_id(-1) is None
    with pytest.raises(StepNotFoundError, match=r"has no step 'fitt'.\nDid you mean: .*fit"):
        store.get_step_run(run.id, "fitt")
    assert store.get_artifact(data.key) == data
    assert store.get_artifact(small.key) == small
    with pytest.raises(ArtifactNotFoundError, match="No artifact with key"):
        store.get_artifact("f" * 64)


def test_cache_lookups_and_previous_step_runs(store: MetadataStore, unique: str) -> None:
    key = unique + "-cache"
    out = ref(unique + "out")
    assert store.find_cached(key) is None
    earlier = store.create_run(workflow=unique, config={})
    [first] = store.create_step_runs(
        earlier.id, [{"name": "0_s", "step": "s", "position": 0, "params": {}}]
    )
    store.start_step_run(first, cache_key=key)
    store.finish_step_run(first, StepOutcome(StepStatus.SUCCEEDED, outputs={"o": out}))
    store.finish_run(earlier.id, "succeeded")
    later = store.create_run(workflow=unique, config={})
    cached = store.find_cached(key)
    assert cached is not None and cached.id == first and cached.outputs == {"o": out}
    previous = store.previous_step_run(unique, "0_s", later.id)
    assert previous is not None and previous.id == first
    assert store.previous_step_run(unique, "0_s", earlier.id) is None


def test_close_step_runs_ends_the_open_ones(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    done, running, pending = store.create_step_runs(
        run.id,
        [{"name": f"{i}_s", "step": "s", "position": i, "params": {}} for i in range(3)],
    )
    store.start_step_run(done)
    store.finish_step_run(done, StepOutcome(StepStatus.SUCCEEDED))
    store.start_step_run(running)
    store.close_step_runs(run.id, "killed", "interrupted")
    statuses = {s.id: (s.status, s.error) for s in store.step_runs(run.id)}
    assert statuses == {
        done: ("succeeded", None),
        running: ("killed", "interrupted"),
        pending: ("killed", "interrupted"),
    }


def test_creating_step_runs_again_returns_the_same_ids(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    entries = [{"name": f"{i}_s", "step": "s", "position": i, "params": {"i": i}} for i in range(3)]
    ids = store.create_step_runs(run.id, entries)
    assert store.create_step_runs(run.id, entries) == ids  # a re-sent batch
    assert [s.id for s in store.step_runs(run.id)] == ids
    single = store.create_step_run(run_id=run.id, name="3_t", step="t", position=3, params={})
    assert store.create_step_run(run_id=run.id, name="3_t", step="t", position=3, params={}) == (
        single
    )
    assert store.create_step_runs(run.id, []) == []
    with pytest.raises(InvalidValueError, match="already recorded"):
        store.create_step_runs(run.id, [entries[0], {**entries[0], "name": "9_new"}])


def test_data_files_are_recorded_once(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    [step] = store.create_step_runs(
        run.id, [{"name": "0_read", "step": "read", "position": 0, "params": {}}]
    )
    sha = hashlib.sha256(unique.encode()).hexdigest()
    path = f"/data/{unique}.csv"
    files = [
        DataFileRecord("path", path, sha, 123),
        DataFileRecord("write:out", path + "x", sha, 1),
    ]
    store.record_data_files(step, files)
    store.record_data_files(step, files)  # a re-sent call adds nothing
    store.record_data_files(step, [])
    recorded = store.data_files(run.id)
    assert [(f.name, f.path, f.sha256, f.size, f.step_run_id, f.step_name) for f in recorded] == [
        ("path", path, sha, 123, step, "0_read"),
        ("write:out", path + "x", sha, 1, step, "0_read"),
    ]
    assert store.data_files(run.id, step_run_id=step) == recorded
    uses = store.data_file_uses(path)
    assert [(u.path, u.step_name) for u in uses] == [(path, f"{run.id}/0_read")]
    reads = store.data_file_reads(paths=[path, path + "x"])
    assert [r.name for r in reads] == ["path"]  # what a step wrote is not a read
    assert [r.path for r in store.data_file_reads(sha256_prefix=sha[:12])] == [path]
