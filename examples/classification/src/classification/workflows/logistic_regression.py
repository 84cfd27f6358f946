"""Load → split → fit → predict → evaluate."""

from __future__ import annotations

from typing import Any

import qflow as qf
from classification.steps.data import load, split
from classification.steps.model import FitLogisticRegression, evaluate, predict


@qf.workflow
def logistic_regression(cfg: Any) -> Any:
    frame = load(cfg.data.dataset)
    X_train, X_test, y_train, y_test = split(frame, cfg.split.test_size, seed=cfg.split.seed)
    model = FitLogisticRegression(C=cfg.model.C, max_iter=cfg.model.max_iter)(X_train, y_train)
    probabilities = predict(model, X_test)
    return evaluate(y_test, probabilities)
