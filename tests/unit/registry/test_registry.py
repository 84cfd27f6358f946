from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import qflow as qf
from qflow.errors import (
    ArtifactNotFoundError,
    InvalidNameError,
    ModelIntegrityError,
    ModelNotFoundError,
)
from qflow.registry import ModelRegistry, QFlowRegistry, parse_ref
from qflow.registry.signature import Signature
from qflow.store.metadata import schema as t
from tests.fixtures.models import features, train


def test_register_infers_signature_and_environment(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    version = qf.models.register(run_id, "fit", name="cancer", project_dir=project)
    assert (version.name, version.version, version.run_id) == ("cancer", 1, run_id)
    assert (version.step, version.output) == ("1_fit", "return")
    assert version.pickled and version.type_name == "sklearn.pipeline.Pipeline"
    signature = Signature.from_dict(version.signature or {})
    assert signature.names == tuple(features().columns)
    assert {c.kind for c in signature.columns} == {"float"}
    run = qf.Client(project).run(run_id)
    assert version.environment == run.meta and len(version.environment_hash) == 64
    assert isinstance(QFlowRegistry.for_project(project), ModelRegistry)


def test_load_by_alias_version_and_latest(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    qf.models.register(run_id, "1_fit.return", name="cancer", project_dir=project)
    other = qf.run(train, {"rows": 300, "C": 0.1}, project_dir=project)
    qf.models.register(other, "fit", name="cancer", project_dir=project)
    qf.models.set_alias("cancer", "production", 1, project_dir=project)
    first = qf.models.load("cancer@production", project_dir=project)
    second = qf.models.load("cancer/2", project_dir=project)
    latest = qf.models.load("cancer", project_dir=project)
    X = features(20)
    assert np.array_equal(second.predict_proba(X), latest.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), second.predict_proba(X))
    assert qf.models.get("cancer@production", project_dir=project).aliases == ("production",)


def test_alias_history_keeps_who_when_and_from(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    registry = QFlowRegistry.for_project(project)
    for _ in range(3):
        registry.register(run_id, "fit", name="cancer")
    registry.set_alias("cancer", "production", 1)
    registry.set_alias("cancer", "production", 3)
    registry.set_alias("cancer", "staging", 2)
    registry.delete_alias("cancer", "staging")
    history = registry.alias_history("cancer")
    assert [(c.alias, c.previous_version, c.version) for c in history] == [
        ("production", None, 1),
        ("production", 1, 3),
        ("staging", None, 2),
        ("staging", 2, None),
    ]
    assert all(c.who and c.changed_at > 0 for c in history)
    assert [c.version for c in registry.alias_history("cancer", "production")] == [1, 3]
    assert registry.models()[0].aliases == {"production": 3}


def test_descriptions_and_tags(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    registry = QFlowRegistry.for_project(project)
    registry.register(run_id, "fit", name="cancer", description="first", tags={"team": "a"})
    registry.describe("cancer", "breast cancer classifier")
    registry.describe("cancer/1", "baseline")
    registry.set_tags("cancer", {"owner": "ml"})
    registry.set_tags("cancer/1", {"team": "b"})
    model = registry.models()[0]
    assert model.description == "breast cancer classifier" and model.tags == {"owner": "ml"}
    version = registry.get("cancer/1")
    assert version.description == "baseline" and version.tags == {"team": "b"}


def test_unknown_references_name_the_problem(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    registry = QFlowRegistry.for_project(project)
    registry.register(run_id, "fit", name="cancer")
    with pytest.raises(ModelNotFoundError, match=r"Did you mean: cancer\?"):
        registry.get("cancr@production")
    with pytest.raises(ModelNotFoundError, match="no alias 'prod'"):
        registry.get("cancer@prod")
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        registry.get("cancer/7")
    with pytest.raises(ModelNotFoundError, match="no version 4"):
        registry.set_alias("cancer", "production", 4)
    with pytest.raises(ArtifactNotFoundError, match="say which one"):
        registry.register(run_id, "load_data", name="data")
    with pytest.raises(ArtifactNotFoundError, match="no output 'Z'"):
        registry.register(run_id, "load_data.Z", name="data")
    with pytest.raises(InvalidNameError, match="'@'"):
        registry.register(run_id, "fit", name="a@b")
    with pytest.raises(InvalidNameError, match="read as a version"):
        registry.set_alias("cancer", "3", 1)


def test_parse_ref() -> None:
    assert parse_ref("churn@production") == parse_ref("models:/churn@production")
    assert parse_ref("churn/3").version == 3
    assert parse_ref("churn/latest") == parse_ref("churn")


def test_tampered_inline_model_is_not_loaded(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    registry = QFlowRegistry.for_project(project)
    version = registry.register(run_id, "fit", name="cancer")
    with registry.metadata.engine.begin() as conn:
        data = conn.execute(
            sa.select(t.artifacts.c.data).where(t.artifacts.c.key == version.artifact_key)
        ).scalar_one()
        assert data is not None, "a small model is kept inline"
        conn.execute(
            t.artifacts.update()
            .where(t.artifacts.c.key == version.artifact_key)
            .values(data=data.replace(b"StandardScaler", b"StandardScalar"))
        )
    with pytest.raises(ModelIntegrityError, match="not the registered"):
        registry.load("cancer/1")


def test_tampered_blob_is_not_loaded(trained: tuple[Path, str]) -> None:
    project, run_id = trained
    registry = QFlowRegistry.for_project(project)
    version = registry.register(run_id, "load_data.X", name="frame")
    assert registry.load("frame").shape == (400, 30)
    path = registry.artifacts.local_path(version.artifact_key)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelIntegrityError, match="changed or corrupted"):
        registry.load("frame")
