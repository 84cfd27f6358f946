"""A real scikit-learn model trained by a real QFlow run, for the registry and serving tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import qflow as qf


@qf.step(outputs=("X", "y"))
def load_data(rows: int) -> tuple[pd.DataFrame, pd.Series]:
    frame = load_breast_cancer(as_frame=True).frame.head(rows)
    return frame.drop(columns="target"), frame["target"]


@qf.step
def fit(X: pd.DataFrame, y: pd.Series, C: float = 1.0) -> Pipeline:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500))
    model.fit(X, y)
    qf.log_metric("train_accuracy", model.score(X, y))
    return model


@qf.workflow
def train(cfg: Any) -> Any:
    X, y = load_data(cfg.rows)
    return fit(X, y, C=cfg.C)


def features(rows: int = 5) -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame.drop(columns="target").head(rows)


@pytest.fixture
def trained(project: Path) -> tuple[Path, str]:
    """A project with one succeeded training run; returns (project folder, run id)."""
    run = qf.run(train, {"rows": 400, "C": 1.0}, project_dir=project)
    return project, run.id
