"""Contract: runs (``RunStore``) behave the same on SQLite, PostgreSQL and the HTTP store."""

from __future__ import annotations

import pytest

from qflow.errors import InvalidValueError, RunNotFoundError
from qflow.ids import new_run_id
from qflow.store.contract import MetadataStore

pytestmark = pytest.mark.integration


def test_create_finish_and_find_a_run(store: MetadataStore, unique: str) -> None:
    run = store.create_run(
        workflow=unique, config={"model": {"C": 0.5}}, command="qflow run x", meta={"a": 1}
    )
    assert (run.workflow, run.status, run.config, run.meta) == (
        unique,
        "running",
        {"model": {"C": 0.5}},
        {"a": 1},
    )
    assert run.pid is not None and run.host
    store.finish_run(run.id, "succeeded")
    store.finish_run(run.id, "failed", "too late")  # a finished run keeps its status
    loaded = store.get_run(run.id)
    assert (loaded.status, loaded.error, loaded.command) == ("succeeded", None, "qflow run x")
    assert loaded.ended_at is not None and loaded.ended_at >= loaded.created_at
    assert store.get_run(run.id[:12]).id == run.id
    assert store.get_run(run.id[:12].upper()).id == run.id


def test_list_runs_filters_newest_first(store: MetadataStore, unique: str) -> None:
    first = store.create_run(workflow=unique, config={})
    second = store.create_run(workflow=unique, config={})
    other = store.create_run(workflow=unique + "_other", config={})
    store.set_tags(first.id, {"team": "a"})
    store.finish_run(first.id, "succeeded")
    assert [r.id for r in store.list_runs(workflow=unique)] == [second.id, first.id]
    assert [r.id for r in store.list_runs(workflow=unique, limit=1)] == [second.id]
    assert [r.id for r in store.list_runs(workflow=unique, status="running")] == [second.id]
    assert [r.id for r in store.list_runs(tags={"team": "a"}) if r.workflow == unique] == [first.id]
    assert {unique, unique + "_other"} <= set(store.workflows())
    assert other.id not in {r.id for r in store.list_runs(workflow=unique)}


def test_unknown_and_ambiguous_run_ids(store: MetadataStore, unique: str) -> None:
    base = new_run_id()[:20]
    a = store.create_run(workflow=unique, config={}, run_id=base + "aaaaaa")
    store.create_run(workflow=unique, config={}, run_id=base + "aaaaab")
    with pytest.raises(RunNotFoundError, match=rf"No run with id '{base}aaaaac'"):
        store.get_run(base + "aaaaac")
    with pytest.raises(RunNotFoundError, match="matches several runs"):
        store.get_run(base + "aaaaa")
    assert store.get_run(base + "aaaaaa").id == a.id


def test_create_run_is_idempotent_for_its_id(store: MetadataStore, unique: str) -> None:
    run_id = new_run_id()
    first = store.create_run(workflow=unique, config={"x": [1, 2]}, run_id=run_id)
    again = store.create_run(workflow=unique, config={"x": [1, 2]}, run_id=run_id)
    assert again.id == first.id == run_id and again.created_at == first.created_at
    assert [r.id for r in store.list_runs(workflow=unique)] == [run_id]
    with pytest.raises(InvalidValueError, match="is taken by another run"):
        store.create_run(workflow=unique + "_x", config={}, run_id=run_id)


def test_update_meta_and_heartbeat(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={}, meta={"a": 1, "b": 2})
    store.update_run_meta(run.id, {"b": 3, "c": {"d": None}})
    store.heartbeat(run.id)
    loaded = store.get_run(run.id)
    assert loaded.meta == {"a": 1, "b": 3, "c": {"d": None}}
    assert run.heartbeat_at is not None and loaded.heartbeat_at is not None
    assert loaded.heartbeat_at >= run.heartbeat_at


def test_a_live_run_is_not_marked_crashed(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    assert run.id not in store.mark_crashed_runs()
    assert store.get_run(run.id).status == "running"


def test_archive_delete_and_restore(store: MetadataStore, unique: str) -> None:
    kept = store.create_run(workflow=unique, config={})
    gone = store.create_run(workflow=unique, config={})
    for run in (kept, gone):
        store.finish_run(run.id, "succeeded")
    [archived] = store.set_run_lifecycle([kept.id], "archived")
    [deleted] = store.set_run_lifecycle([gone.id[:14]], "deleted")
    assert archived.archived_at is not None and deleted.deleted_at is not None
    assert store.list_runs(workflow=unique) == []
    assert [r.id for r in store.list_runs(workflow=unique, include_archived=True)] == [kept.id]
    both = store.list_runs(workflow=unique, include_archived=True, include_deleted=True)
    assert {r.id for r in both} == {kept.id, gone.id}
    store.set_run_lifecycle([kept.id, gone.id], "active")
    assert {r.id for r in store.list_runs(workflow=unique)} == {kept.id, gone.id}
    running = store.create_run(workflow=unique, config={})
    with pytest.raises(InvalidValueError, match="is still running"):
        store.set_run_lifecycle([running.id], "archived")
    with pytest.raises(InvalidValueError, match="lifecycle"):
        store.set_run_lifecycle([kept.id], "frozen")


def test_unicode_and_long_names_are_stored_exactly(store: MetadataStore, unique: str) -> None:
    workflow = unique + "_обучение_模型"
    run = store.create_run(workflow=workflow, config={"ключ": "値 🚀"})
    long_key = "k" * 250
    name = "μ/σ ✓ " + "é" * 200
    store.log_params(run.id, {long_key: "v", name: 1})
    store.set_tags(run.id, {name: "🚀" * 300})
    store.log_metrics([(run.id, None, name, 1.0, None, 0.0)])
    loaded = store.get_run(run.id)
    assert loaded.workflow == workflow and loaded.config == {"ключ": "値 🚀"}
    assert loaded.params == {long_key: "v", name: 1}
    assert loaded.tags == {name: "🚀" * 300}
    assert [m.key for m in store.metrics(run.id)] == [name]
