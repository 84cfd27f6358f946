"""Steps are plain functions outside a workflow, so they are tested directly."""

from classification.steps.data import load, split
from classification.steps.model import FitLogisticRegression, evaluate, predict


def test_pipeline_steps_as_plain_functions() -> None:
    frame = load("iris")
    X_train, X_test, y_train, y_test = split(frame, 0.3, seed=0)
    model = FitLogisticRegression(C=1.0)(X_train, y_train)
    metrics = evaluate(y_test, predict(model, X_test))
    assert metrics["accuracy"] > 0.8
