"""Load a data set that ships with scikit-learn and split it."""

from __future__ import annotations

import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

import qflow as qf

LOADERS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
}


@qf.step
def load(dataset: str) -> pd.DataFrame:
    """The data set as one table: feature columns and a ``target`` column."""
    if dataset not in LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(LOADERS)}")
    frame = LOADERS[dataset](as_frame=True).frame
    qf.log_metric("rows", len(frame))
    print(f"loaded {dataset}: {frame.shape[0]} rows, {frame.shape[1] - 1} features")
    return frame


@qf.step(outputs=("X_train", "X_test", "y_train", "y_test"))
def split(
    frame: pd.DataFrame, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """A stratified train/test split."""
    X = frame.drop(columns="target")
    y = frame["target"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    return X_train, X_test, y_train, y_test
