"""Fit, predict and evaluate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import qflow as qf


@qf.step
@dataclass
class FitLogisticRegression:
    """A class-based step: its fields are parameters that config can set."""

    C: float = 1.0
    max_iter: int = 500

    def __call__(self, X: pd.DataFrame, y: pd.Series) -> Pipeline:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))
        # A learning curve: accuracy on the training data as it grows, logged with a step index.
        for index, fraction in enumerate((0.25, 0.5, 0.75, 1.0)):
            rows = max(10, int(len(X) * fraction))
            model.fit(X.iloc[:rows], y.iloc[:rows])
            qf.log_metric("train_accuracy", model.score(X, y), step=index)
        qf.log_param("n_features", X.shape[1])
        return model


@qf.step
def predict(model: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Class probabilities for every row."""
    return model.predict_proba(X)


@qf.step
def evaluate(y_true: pd.Series, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC on the test set, logged and returned."""
    predicted = probabilities.argmax(axis=1)
    metrics = {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1": float(f1_score(y_true, predicted, average="macro")),
    }
    if probabilities.shape[1] == 2:
        metrics["roc_auc"] = float(roc_auc_score(y_true, probabilities[:, 1]))
    qf.log_metrics(metrics)
    _log_confusion_matrix(y_true, predicted)
    return metrics


def _log_confusion_matrix(y_true: pd.Series, predicted: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    display = ConfusionMatrixDisplay.from_predictions(y_true, predicted)
    qf.log_figure(display.figure_, "confusion_matrix.png")
    plt.close(display.figure_)
