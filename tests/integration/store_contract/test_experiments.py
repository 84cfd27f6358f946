"""Contract: experiments recorded before their runs (``RunStore.create_experiment``) behave
the same on SQLite, PostgreSQL and the HTTP store."""

from __future__ import annotations

import pytest

from qflow.store.contract import MetadataStore
from qflow.store.metadata.records import Experiment

pytestmark = pytest.mark.integration


def test_an_experiment_is_recorded_once_with_its_tags(store: MetadataStore, unique: str) -> None:
    assert store.create_experiment(unique, {"team": "vision", "note": "é ✓"}) is True
    assert store.create_experiment(unique, {"team": "other"}) is False
    found = [e for e in store.experiments() if e.name == unique]
    assert len(found) == 1 and isinstance(found[0], Experiment)
    assert found[0].tags == {"team": "vision", "note": "é ✓"}
    assert found[0].created_at > 0
    assert unique not in store.workflows()  # recorded, still without runs


def test_experiments_are_listed_by_name(store: MetadataStore, unique: str) -> None:
    for name in (f"{unique}_b", f"{unique}_a"):
        store.create_experiment(name, {})
    names = [e.name for e in store.experiments() if e.name.startswith(unique)]
    assert names == [f"{unique}_a", f"{unique}_b"]
