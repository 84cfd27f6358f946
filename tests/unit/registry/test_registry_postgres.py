"""The registry on PostgreSQL: versions, aliases with history and hash-checked loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qflow as qf
from qflow.registry import QFlowRegistry
from tests.fixtures.models import features, train


@pytest.mark.postgres
def test_registry_round_trip_on_postgres(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QFLOW_STORE", postgres_url)
    first = qf.run(train, {"rows": 400, "C": 1.0}, project_dir=project)
    second = qf.run(train, {"rows": 300, "C": 0.1}, project_dir=project)
    assert not (project / ".qflow" / "qflow.db").exists()
    registry = QFlowRegistry.for_project(project)
    registry.register(first.id, "fit", name="cancer", description="baseline")
    registry.register(second.id, "fit", name="cancer")
    registry.set_alias("cancer", "production", 1)
    registry.set_alias("cancer", "production", 2)
    assert [(c.previous_version, c.version) for c in registry.alias_history("cancer")] == [
        (None, 1),
        (1, 2),
    ]
    assert registry.get("cancer/1").description == "baseline"
    production = qf.models.load("cancer@production", project_dir=project)
    direct = qf.models.load("cancer/2", project_dir=project)
    X = features(10)
    assert np.array_equal(production.predict_proba(X), direct.predict_proba(X))
