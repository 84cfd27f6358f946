"""Contract: run queries (``RunQueryStore``): the filter language, the runs page, histories."""

from __future__ import annotations

import math

import pytest

from qflow.store.contract import MetadataStore
from qflow.store.filters import FilterError

pytestmark = pytest.mark.integration


def _runs(store: MetadataStore, workflow: str) -> list[str]:
    ids = []
    for i, (c, kind, acc) in enumerate(
        [(0.5, "lr", 0.9), (1.0, "svm", 0.7), ("big", "lr", math.nan)]
    ):
        run = store.create_run(workflow=workflow, config={"model": {"kind": kind}})
        store.log_params(run.id, {"C": c})
        store.set_tags(run.id, {"team": "a" if i != 1 else "b"})
        store.log_metrics([(run.id, None, "acc", acc, 0, 1.0)])
        store.finish_run(run.id, "succeeded")
        ids.append(run.id)
    return ids


def test_runs_matching_the_filter_language(store: MetadataStore, unique: str) -> None:
    ids = _runs(store, unique)
    found = store.runs_matching("tags.team = 'a' and config.model.kind = 'lr'", workflow=unique)
    assert [r.id for r in found] == [ids[2], ids[0]]
    assert found[1].params == {"C": 0.5} and found[1].metrics_summary == {"acc": 0.9}
    assert math.isnan(found[0].metrics_summary["acc"])
    assert [r.id for r in store.runs_matching("metrics.acc > 0.8", workflow=unique)] == [ids[0]]
    assert [r.id for r in store.runs_matching("params.C = 1.0", workflow=unique, limit=5)] == [
        ids[1]
    ]
    assert store.runs_matching("status = 'failed'", workflow=unique) == []
    with pytest.raises(FilterError, match="is not valid at character"):
        store.runs_matching("params.C ~ 'b' and", workflow=unique)


def test_runs_page_sorts_and_paginates(store: MetadataStore, unique: str) -> None:
    ids = _runs(store, unique)
    page = store.runs_page(workflow=unique, sort="metrics.acc", limit=2)
    assert [r["id"] for r in page.runs] == [ids[0], ids[1]] and page.has_more
    assert page.runs[0]["metrics"] == {"acc": 0.9} and page.runs[0]["params"] == {"C": 0.5}
    rest = store.runs_page(workflow=unique, sort="metrics.acc", offset=2, limit=2)
    assert [r["id"] for r in rest.runs] == [ids[2]] and not rest.has_more
    assert rest.runs[0]["metrics"] == {"acc": None}  # NaN is not JSON
    assert (page.param_keys, page.metric_keys) == (["C"], ["acc"])
    ascending = store.runs_page(workflow=unique, sort="params.C", descending=False)
    assert [r["id"] for r in ascending.runs] == [ids[0], ids[1], ids[2]]
    filtered = store.runs_page(filter_text="tags.team = 'b'", workflow=unique)
    assert [r["id"] for r in filtered.runs] == [ids[1]]
    assert filtered.runs[0]["duration"] is not None and filtered.runs[0]["tags"] == {"team": "b"}


def test_workflow_stats_and_metric_histories(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    store.log_metrics([(run.id, None, "loss", 1.0 / (i + 1), i, float(i)) for i in range(2000)])
    store.log_metrics([(run.id, None, "spike", v, None, 0.0) for v in (1.0, math.inf, 3.0)])
    [stats] = [w for w in store.workflow_stats() if w["name"] == unique]
    assert stats["runs"] == 1 and stats["last_run_at"] == run.created_at
    assert store.metric_keys(run.id) == [
        {"key": "loss", "points": 2000, "latest": 1.0 / 2000},
        {"key": "spike", "points": 3, "latest": 3.0},
    ]
    chart = store.metric_history(run.id, "loss", points=100)
    assert chart["total_points"] == 2000 and chart["downsampled"]
    assert len(chart["x"]) <= 100 and chart["y"][0] == 1.0 and chart["x"][-1] == 1999
    full = store.metric_history(run.id, "loss", full=True)
    assert len(full["timestamp"]) == 2000 and full["x"] == list(range(2000))
    newer = store.metric_history(run.id, "loss", full=True, after=full["last_id"])
    assert newer["total_points"] == 0 and newer["last_id"] == full["last_id"]
    spike = store.metric_history(run.id, "spike")
    assert (spike["x"], spike["y"]) == ([0, 1, 2], [1.0, None, 3.0])
