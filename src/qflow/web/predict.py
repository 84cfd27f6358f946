"""Predictions for an uploaded CSV with a registered model.

The upload is parsed as CSV only (pandas ``read_csv``) and checked against the model's
signature; it is never unpickled. The model comes from the registry, hash-checked before it
is deserialized.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

from qflow.errors import SignatureMismatchError

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry
    from qflow.store.metadata.records import ModelVersion


class ModelCache:
    """Loaded models by (name, version); a few at most."""

    def __init__(self, registry: QFlowRegistry, size: int = 4) -> None:
        self.registry = registry
        self.size = size
        self._models: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def load(self, version: ModelVersion) -> Any:
        key = (version.name, version.version)
        with self._lock:
            if key in self._models:
                return self._models[key]
        model = self.registry.load_version(version)
        with self._lock:
            if len(self._models) >= self.size:
                self._models.pop(next(iter(self._models)))
            self._models[key] = model
        return model


def predict_csv(cache: ModelCache, ref: str, body: bytes) -> tuple[bytes, ModelVersion]:
    """The input rows with a ``prediction`` column (several for 2-d output), as CSV bytes."""
    import pandas as pd

    from qflow.registry.signature import Signature
    from qflow.serving.app import BadRequest, parse_csv

    version = cache.registry.get(ref)
    signature = Signature.from_dict(version.signature) if version.signature else None
    if not body.strip():
        raise SignatureMismatchError("The uploaded file is empty.", field="file", code="empty")
    try:
        frame = parse_csv(body, signature)
    except BadRequest as exc:
        raise SignatureMismatchError(exc.message, field="file", code=exc.code) from exc
    model = cache.load(version)
    try:
        predictions = model.predict(frame)
    except Exception as exc:
        raise SignatureMismatchError(
            f"The model could not predict on this input: {exc}",
            field="file",
            code="prediction_failed",
        ) from exc
    out = frame.copy() if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    values = predictions.to_numpy() if hasattr(predictions, "to_numpy") else predictions
    shape: tuple[int, ...] = tuple(getattr(values, "shape", (len(out),)))
    if len(shape) == 2 and shape[1] > 1:
        for i in range(shape[1]):
            out[f"prediction_{i}"] = values[:, i]
    else:
        out["prediction"] = list(values.reshape(-1) if hasattr(values, "reshape") else values)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode(), version
