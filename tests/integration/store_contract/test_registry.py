"""Contract: the model registry (``RegistryStore``): versions, tags, aliases, alias history."""

from __future__ import annotations

import hashlib

import pytest

from qflow.errors import ModelNotFoundError
from qflow.store.artifacts import ArtifactRef
from qflow.store.contract import MetadataStore
from qflow.store.metadata.records import StepOutcome, StepStatus

pytestmark = pytest.mark.integration


def _trained(store: MetadataStore, unique: str) -> dict[str, object]:
    """A finished run whose step wrote a model: the fields of a version of it."""
    run = store.create_run(workflow=unique, config={}, meta={"python": "3.11"})
    [step] = store.create_step_runs(
        run.id, [{"name": "0_fit", "step": "fit", "position": 0, "params": {}}]
    )
    model = ArtifactRef(hashlib.sha256(unique.encode()).hexdigest(), "skops", 42, "Model", False)
    store.finish_step_run(step, StepOutcome(StepStatus.SUCCEEDED, outputs={"return": model}))
    store.finish_run(run.id, "succeeded")
    return {
        "name": unique,
        "run_id": run.id,
        "step_run_id": step,
        "step": "0_fit",
        "output": "return",
        "artifact_key": model.key,
        "signature": {"inputs": [{"name": "x", "type": "double"}]},
        "environment": {"python": "3.11"},
        "environment_hash": "e" * 64,
        "description": "first",
        "created_by": "ana",
        "pickled": False,
    }


def test_versions_are_numbered_per_model(store: MetadataStore, unique: str) -> None:
    fields = _trained(store, unique)
    with pytest.raises(ModelNotFoundError, match="No registered model named"):
        store.require_model(unique)
    assert store.create_model_version(fields, {"stage": "dev"}) == 1
    assert store.create_model_version({**fields, "description": None}, {}) == 2
    store.require_model(unique)
    assert unique in store.model_names()
    assert store.model_version_numbers(unique) == [1, 2]
    assert store.latest_model_version(unique) == 2
    first = store.model_version(unique, 1)
    assert (first.run_id, first.step, first.output, first.description) == (
        fields["run_id"],
        "0_fit",
        "return",
        "first",
    )
    assert (first.serializer, first.type_name, first.size, first.pickled) == (
        "skops",
        "Model",
        42,
        False,
    )
    assert first.signature == fields["signature"] and first.tags == {"stage": "dev"}
    assert [v.version for v in store.model_versions(unique)] == [1, 2]
    with pytest.raises(ModelNotFoundError, match="has no version 3"):
        store.model_version(unique, 3)
    with pytest.raises(ModelNotFoundError, match="No registered model named"):
        store.model_versions(unique + "_missing")


def test_descriptions_tags_and_listing(store: MetadataStore, unique: str) -> None:
    fields = _trained(store, unique)
    store.create_model_version(fields, {})
    store.set_model_description(unique, None, "the churn model")
    store.set_model_description(unique, 1, "v1")
    store.set_model_tags(unique, None, {"team": "a"})
    store.set_model_tags(unique, 1, {"stage": "prod"})
    store.set_model_tags(unique, 1, {"stage": "staging"})
    assert store.model_tags(unique) == {"team": "a"}
    version = store.model_version(unique, 1)
    assert (version.description, version.tags) == ("v1", {"stage": "staging"})
    [listed] = [m for m in store.models() if m.name == unique]
    assert (listed.description, listed.latest_version, listed.tags) == (
        "the churn model",
        1,
        {"team": "a"},
    )


def test_aliases_move_and_keep_their_history(store: MetadataStore, unique: str) -> None:
    fields = _trained(store, unique)
    store.create_model_version(fields, {})
    store.create_model_version(fields, {})
    assert store.alias_version(unique, "production") is None
    first = store.move_alias(unique, "production", 1, "ana")
    assert (first.version, first.previous_version, first.who) == (1, None, "ana")
    store.move_alias(unique, "production", 2, "bo")
    store.move_alias(unique, "staging", 1, "bo")
    assert store.alias_version(unique, "production") == 2
    assert store.model_aliases(unique) == {"production": 2, "staging": 1}
    assert store.model_version(unique, 1).aliases == ("staging",)
    store.move_alias(unique, "staging", None, "ana")
    assert store.model_aliases(unique) == {"production": 2}
    history = store.alias_history(unique)
    assert [(h.alias, h.version, h.previous_version) for h in history] == [
        ("production", 1, None),
        ("production", 2, 1),
        ("staging", 1, None),
        ("staging", None, 1),
    ]
    assert [h.version for h in store.alias_history(unique, "production")] == [1, 2]
