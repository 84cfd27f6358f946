"""Contract: metrics, params, tags and logged artifacts (``LogStore``), and provenance
(``EnvironmentStore``)."""

from __future__ import annotations

import hashlib
import math
import struct

import pytest

from qflow.errors import InvalidValueError
from qflow.store.artifacts import ArtifactRef
from qflow.store.contract import MetadataStore
from qflow.store.metadata.records import StepOutcome, StepStatus
from qflow.store.methods import METRIC_BATCH_ROWS

pytestmark = pytest.mark.integration

EXACT = [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.1]


def bits(value: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", value))[0])


def test_metrics_round_trip_to_the_bit(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    [step] = store.create_step_runs(
        run.id, [{"name": "0_s", "step": "s", "position": 0, "params": {}}]
    )
    store.log_metrics([(run.id, None, "x", v, i, 1000.0 + i) for i, v in enumerate(EXACT)])
    store.log_metrics([(run.id, step, "y", 2.5, None, 2000.0)])
    store.log_metrics([])
    metrics = store.metrics(run.id, "x")
    assert [bits(m.value) for m in metrics] == [bits(v) for v in EXACT]
    assert [(m.step, m.timestamp, m.step_run_id) for m in metrics] == [
        (i, 1000.0 + i, None) for i in range(len(EXACT))
    ]
    [y] = store.metrics(run.id, step_run_id=step)
    assert (y.key, y.value, y.step, y.step_run_id) == ("y", 2.5, None, step)
    assert len(store.metrics(run.id)) == len(EXACT) + 1
    summary = store.get_run(run.id).metrics_summary
    assert bits(summary["x"]) == bits(0.1) and summary["y"] == 2.5
    with pytest.raises(InvalidValueError, match="not a number"):
        store.log_metrics([(run.id, None, "bad", "high", None, 0.0)])  # type: ignore[list-item]


def test_a_resent_metric_batch_is_stored_once(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    rows = [(run.id, None, "loss", float(i), i, 1000.0 + i / 1000) for i in range(50)]
    store.log_metrics(rows)
    store.log_metrics(rows, retry=True)  # its answer was lost: sent again
    assert len(store.metrics(run.id, "loss")) == 50
    more = [(run.id, None, "loss", float(i), i, 2000.0 + i / 1000) for i in range(50)]
    store.log_metrics(more, retry=True)  # not stored yet: stored
    assert len(store.metrics(run.id, "loss")) == 100


def test_a_batch_longer_than_a_request_is_stored_whole(store: MetadataStore, unique: str) -> None:
    """The HTTP store sends a long batch in parts (the server refuses more rows than
    ``5 * METRIC_BATCH_ROWS`` in one request); every row arrives, in order, once."""
    run = store.create_run(workflow=unique, config={})
    count = 5 * METRIC_BATCH_ROWS + 7
    store.log_metrics([(run.id, None, "x", float(i), i, 1.0) for i in range(count)])
    assert [m.step for m in store.metrics(run.id, "x")] == list(range(count))


def test_params_are_written_once_and_tags_replace(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    [step] = store.create_step_runs(
        run.id, [{"name": "0_s", "step": "s", "position": 0, "params": {}}]
    )
    store.log_params(run.id, {"C": 0.5, "layers": [1, 2], "name": "a"})
    store.log_params(run.id, {"C": 0.5})  # the same value again is fine
    store.log_params(run.id, {"C": 9.0, "lr": 0.1}, step_run_id=step)
    with pytest.raises(InvalidValueError, match="cannot change"):
        store.log_params(run.id, {"C": 0.6})
    store.set_tags(run.id, {"team": "a", "stage": "dev"})
    store.set_tags(run.id, {"stage": "prod"})
    loaded = store.get_run(run.id)
    assert loaded.params == {"C": 0.5, "layers": [1, 2], "name": "a", "lr": 0.1}
    assert loaded.tags == {"team": "a", "stage": "prod"}
    assert store.param_rows(run.id) == [
        (None, "C", 0.5),
        (None, "layers", [1, 2]),
        (None, "name", "a"),
        (step, "C", 9.0),
        (step, "lr", 0.1),
    ]


def test_non_finite_params_and_config_read_back(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={"threshold": math.inf})
    store.log_params(run.id, {"lr": math.nan, "floor": -math.inf})
    loaded = store.get_run(run.id)
    assert loaded.config == {"threshold": math.inf}
    assert math.isnan(loaded.params["lr"]) and loaded.params["floor"] == -math.inf
    [listed] = [r for r in store.list_runs(workflow=unique)]
    assert math.isnan(listed.params["lr"])


def test_logged_artifacts_replace_by_label(store: MetadataStore, unique: str) -> None:
    run = store.create_run(workflow=unique, config={})
    first = ArtifactRef(hashlib.sha256(b"1" + unique.encode()).hexdigest(), "file", 3, "x", False)
    second = ArtifactRef(hashlib.sha256(b"2" + unique.encode()).hexdigest(), "file", 4, "y", False)
    store.log_run_artifact(run.id, "plots/loss.png", first)
    store.log_run_artifact(run.id, "plots/loss.png", second)
    store.log_run_artifact(run.id, "notes.txt", first)
    logged = store.run_artifacts(run.id)
    assert [(a.name, a.ref, a.step_run_id) for a in logged] == [
        ("notes.txt", first, None),
        ("plots/loss.png", second, None),
    ]
    assert store.get_artifact(first.key) == first


def test_environments_sources_and_artifact_uses(store: MetadataStore, unique: str) -> None:
    packages = {"numpy": "2.0.0", unique: "1.0"}
    env_hash = hashlib.sha256(unique.encode()).hexdigest()
    assert store.environment(env_hash) is None
    store.save_environment(env_hash, packages)
    store.save_environment(env_hash, packages)
    assert store.environment(env_hash) == packages
    texts = [f"def {unique}(): pass", "ü 🚀"]
    keys = store.save_sources(texts)
    assert keys == [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    assert [store.source(k) for k in keys] == texts
    assert store.source("0" * 64) is None
    run = store.create_run(workflow=unique, config={})
    [step] = store.create_step_runs(
        run.id, [{"name": "0_s", "step": "s", "position": 0, "params": {}}]
    )
    out = ArtifactRef(hashlib.sha256(b"out" + unique.encode()).hexdigest(), "json", 2, "d", False)
    store.finish_step_run(step, StepOutcome(StepStatus.SUCCEEDED, outputs={"o": out}))
    assert store.artifact_uses(out.key) == [(run.id, "0_s", "out", "o")]
