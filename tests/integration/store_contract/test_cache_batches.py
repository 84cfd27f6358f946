"""Contract: the batch cache lookups (``find_cached_many``, ``previous_step_runs``) answer for
each key or name exactly what the single lookups (``find_cached``, ``previous_step_run``) do."""

from __future__ import annotations

import hashlib
import time

import pytest
import sqlalchemy as sa

from qflow.store.artifacts import ArtifactRef
from qflow.store.contract import MetadataStore
from qflow.store.metadata import schema as t
from qflow.store.metadata.records import DataFileRecord, StepOutcome, StepStart, StepStatus
from qflow.store.metadata.store import SqlMetadataStore
from qflow.store.remote import RemoteMetadataStore

pytestmark = pytest.mark.integration

SUCCEEDED, FAILED, CACHED = StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CACHED


def inline(text: str) -> ArtifactRef:
    data = text.encode()
    return ArtifactRef(
        hashlib.sha256(data).hexdigest(), "json", len(data), "builtins.int", False, data
    )


def record(
    store: MetadataStore, workflow: str, steps: list[tuple[str, str | None, StepStatus]]
) -> tuple[str, list[int]]:
    """A finished run of ``workflow`` with step runs ``(name, cache key, status)``, each with
    its own input and output; its id and the step runs' ids."""
    time.sleep(0.002)  # run ids sort by their millisecond
    run = store.create_run(workflow=workflow, config={})
    ids = store.create_step_runs(
        run.id,
        [
            {"name": n, "step": "s", "position": i, "params": {}}
            for i, (n, _, _) in enumerate(steps)
        ],
    )
    store.record_step_runs(
        [StepStart(i, cache_key=key) for i, (_, key, _) in zip(ids, steps, strict=True)],
        [
            (
                i,
                StepOutcome(
                    status,
                    inputs={"x": inline(f"{run.id} {name} in")},
                    outputs={"y": inline(f"{run.id} {name} out")},
                ),
            )
            for i, (name, _, status) in zip(ids, steps, strict=True)
        ],
    )
    store.finish_run(run.id, "succeeded")
    return run.id, ids


def drop_artifact_row(store: MetadataStore, request: pytest.FixtureRequest, key: str) -> None:
    """Delete an artifacts row a step run's output names, past the foreign key (what an old
    ``qflow gc`` or a hand-edited database leaves): its step runs are no longer a hit."""
    if isinstance(store, RemoteMetadataStore):
        url = request.getfixturevalue("shared_server").store_url
    else:
        assert isinstance(store, SqlMetadataStore)
        url = store.url
    engine = sa.create_engine(url)  # no foreign-key pragma on SQLite
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.execute(t.artifacts.delete().where(t.artifacts.c.key == key))
    finally:
        engine.dispose()


def test_find_cached_many_is_find_cached_for_each_key(
    store: MetadataStore, unique: str, request: pytest.FixtureRequest
) -> None:
    def key(case: str) -> str:
        return f"{unique}-{case}"

    record(
        store,
        unique,
        [
            ("0_hit", key("hit"), SUCCEEDED),
            ("1_failed", key("failed"), FAILED),
            ("3_missing", key("missing"), SUCCEEDED),
            ("4_latest", key("latest"), SUCCEEDED),
            ("5_older", key("older"), SUCCEEDED),
            ("6_cached", key("cached"), CACHED),
        ],
    )
    _, (_, later_latest, later_failed) = record(
        store,
        unique,
        [
            ("0_other", None, SUCCEEDED),
            ("4_latest", key("latest"), SUCCEEDED),
            ("4_latest_failed", key("latest"), FAILED),
        ],
    )
    deleted, _ = record(
        store,
        unique,
        [("2_deleted", key("deleted"), SUCCEEDED), ("5_older", key("older"), SUCCEEDED)],
    )
    store.set_run_lifecycle([deleted], "deleted")
    [missing] = store.find_cached_many([key("missing")]).values()
    drop_artifact_row(store, request, missing.outputs["y"].key)

    keys = [key(c) for c in ("hit", "miss", "failed", "deleted", "missing", "latest", "older")]
    keys += [key("cached"), key("hit")]  # a status other than succeeded; a key twice
    many = store.find_cached_many(keys)
    assert many == {k: hit for k in keys if (hit := store.find_cached(k)) is not None}
    assert sorted(many) == sorted([key("hit"), key("latest"), key("older")])
    assert many[key("latest")].id == later_latest != later_failed
    assert many[key("older")].run_id != deleted  # the latest hit outside the deleted run
    assert many[key("hit")].outputs == {"y": inline(f"{many[key('hit')].run_id} 0_hit out")}
    assert many[key("hit")].inputs == {"x": inline(f"{many[key('hit')].run_id} 0_hit in")}
    assert store.find_cached_many([]) == {}


def test_find_cached_many_beyond_one_query(store: MetadataStore, unique: str) -> None:
    count = 503  # more keys than one IN list carries
    run_id, _ = record(
        store, unique, [(f"{i}_s", f"{unique}-{i}", SUCCEEDED) for i in range(count)]
    )
    keys = [f"{unique}-{i}" for i in range(count + 2)]
    many = store.find_cached_many(keys)
    assert len(many) == count
    assert many == {k: hit for k in keys if (hit := store.find_cached(k)) is not None}
    assert all(
        hit.run_id == run_id and hit.outputs == {"y": inline(f"{run_id} {hit.name} out")}
        for hit in many.values()
    )


def test_previous_step_runs_is_previous_step_run_for_each_name(
    store: MetadataStore, unique: str
) -> None:
    first, _ = record(
        store,
        unique,
        [("0_a", None, SUCCEEDED), ("1_b", None, SUCCEEDED), ("2_failed", None, FAILED)],
    )
    second, _ = record(
        store,
        unique,
        [("0_a", None, CACHED), ("1_b", None, FAILED), ("2_failed", None, FAILED)],
    )
    record(store, unique + "_other", [("3_elsewhere", None, SUCCEEDED)])
    current = store.create_run(workflow=unique, config={})
    record(store, unique, [("4_after", None, SUCCEEDED)])

    names = ["0_a", "1_b", "2_failed", "3_elsewhere", "4_after", "9_never", "0_a"]
    many = store.previous_step_runs(unique, names, current.id)
    assert many == {
        n: step for n in names if (step := store.previous_step_run(unique, n, current.id))
    }
    assert {n: (s.run_id, s.status) for n, s in many.items()} == {
        "0_a": (second, "cached"),
        "1_b": (first, "succeeded"),
    }
    assert many["1_b"].outputs == {"y": inline(f"{first} 1_b out")}
    assert store.previous_step_runs(unique, names, first) == {}
    assert store.previous_step_runs(unique, [], current.id) == {}


def test_previous_step_runs_beyond_one_query(store: MetadataStore, unique: str) -> None:
    count = 503
    earlier, _ = record(store, unique, [(f"{i}_s", None, SUCCEEDED) for i in range(count)])
    current = store.create_run(workflow=unique, config={})
    names = [f"{i}_s" for i in range(count + 2)]
    many = store.previous_step_runs(unique, names, current.id)
    assert sorted(many) == sorted(names[:count])
    assert many == {
        n: step for n in names if (step := store.previous_step_run(unique, n, current.id))
    }
    assert all(s.run_id == earlier and s.name == n for n, s in many.items())


def test_data_files_of_is_data_files_of_each_step_run(store: MetadataStore, unique: str) -> None:
    count = 502  # more step runs than one IN list carries, over two runs
    first, first_ids = record(store, unique, [(f"{i}_s", None, SUCCEEDED) for i in range(count)])
    second, second_ids = record(store, unique, [("0_s", None, SUCCEEDED), ("1_s", None, FAILED)])
    runs = {i: first for i in first_ids} | {i: second for i in second_ids}
    for n, step_run_id in enumerate([*first_ids[::3], *second_ids]):
        store.record_data_files(
            step_run_id,
            [
                DataFileRecord(f"read:{n}-{k}.csv", f"/data/{n}-{k}.csv", f"{n % 16:x}" * 64, k)
                for k in range(n % 3 + 1)
            ],
        )
    asked = [*reversed(second_ids), *first_ids, 999_999_999]  # any order, an unknown id
    found = store.data_files_of(asked)
    expected = [f for i in sorted(runs) for f in store.data_files(runs[i], i)]
    assert sorted(found, key=lambda f: (f.step_run_id or 0, f.name)) == sorted(
        expected, key=lambda f: (f.step_run_id or 0, f.name)
    )
    assert len(found) == len(expected) > count // 3
    assert all(f.step_name for f in found)
    assert store.data_files_of([]) == []
