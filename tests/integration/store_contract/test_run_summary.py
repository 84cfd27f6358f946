"""Contract: ``get_run(..., summary=False)`` is the run without its metrics summary, the same
on SQLite, PostgreSQL and the HTTP store (a write path checks a run's state with it)."""

from __future__ import annotations

import pytest

from qflow.store.contract import MetadataStore

pytestmark = pytest.mark.integration


def test_a_run_read_without_its_metrics_summary(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={"C": 1})
    store.log_metrics([(run.id, None, "loss", 0.5, 0, 1.0), (run.id, None, "loss", 0.25, 1, 2.0)])
    store.log_params(run.id, {"site": "A"})
    store.set_tags(run.id, {"team": "growth"})
    full = store.get_run(run.id)
    assert full.metrics_summary == {"loss": 0.25}
    light = store.get_run(run.id, summary=False)
    assert light.metrics_summary == {}
    assert (light.id, light.status, light.params, light.tags, light.deleted_at) == (
        run.id,
        "running",
        {"site": "A"},
        {"team": "growth"},
        None,
    )
    assert store.get_run(run.id[:12], summary=False).id == run.id
