"""The MLflow Model Registry plugin against a real local (SQLite-backed) MLflow registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qflow.errors import ModelIntegrityError, ModelNotFoundError
from qflow.registry import ModelRegistry, QFlowRegistry
from tests.fixtures.models import features, trained

__all__ = ["trained"]

pytest.importorskip("mlflow")


def test_register_alias_and_load_from_mlflow(
    trained: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qflow.registry.mlflow_registry import MlflowRegistry

    project, run_id = trained
    monkeypatch.chdir(tmp_path)
    source = QFlowRegistry.for_project(project)
    registry = MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", source=source)
    assert isinstance(registry, ModelRegistry)
    version = registry.register(run_id, "fit", name="cancer", description="from qflow")
    assert (version.version, version.run_id, version.step) == (1, run_id, "1_fit")
    assert version.signature and version.signature["columns"][0]["name"] == "mean radius"
    change = registry.set_alias("cancer", "production", 1)
    assert (change.previous_version, change.version) == (None, 1)

    model = registry.load("models:/cancer@production")
    X = features(10)
    qflow_model = source.load_verified(
        source.metadata.get_step_run(run_id, "fit").outputs["return"], "fit"
    )
    assert np.array_equal(model.predict_proba(X), qflow_model.predict_proba(X))
    assert registry.get("cancer").aliases == ("production",)
    assert [v.version for v in registry.versions("cancer")] == [1]

    with pytest.raises(ModelNotFoundError, match="no model 'cancer@staging'"):
        registry.get("cancer@staging")


def test_tampered_mlflow_model_is_not_loaded(
    trained: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qflow.registry.mlflow_registry import MlflowRegistry

    project, run_id = trained
    monkeypatch.chdir(tmp_path)
    registry = MlflowRegistry(
        f"sqlite:///{tmp_path / 'mlflow.db'}", source=QFlowRegistry.for_project(project)
    )
    registry.register(run_id, "fit", name="cancer")
    stored = [p for p in (tmp_path / "mlruns").rglob("MLmodel")]
    assert stored
    stored[0].write_text(stored[0].read_text() + "\n# changed\n")
    with pytest.raises(ModelIntegrityError, match="not loaded"):
        registry.load("cancer/1")
