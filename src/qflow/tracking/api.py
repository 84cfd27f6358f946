"""``qf.log_*`` functions. Inside a running step they record into the run; outside any run
they only check their arguments, so steps stay unit-testable as plain functions."""

from __future__ import annotations

import io
import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qflow.errors import InvalidValueError
from qflow.names import check_artifact_path, check_name
from qflow.runtime.context import current_recorder

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _as_float(key: str, value: object) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        item = getattr(value, "item", None)
        if callable(item) and not isinstance(value, bool):
            return _as_float(key, item())
        raise InvalidValueError(
            f"Metric {key!r} got {value!r} (a {type(value).__name__}); metrics must be real "
            "numbers. Hint: log text with qf.set_tag or qf.log_param instead."
        )
    try:
        return float(value)
    except (OverflowError, ValueError) as exc:
        raise InvalidValueError(
            f"Metric {key!r} got {_short(value)} which does not fit a float64 ({exc}). "
            "Hint: log a smaller number (or its logarithm)."
        ) from exc


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} digits)"


def _as_step(key: str, step: object) -> int:
    """The step index as a plain int in the int64 range the stores keep."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidValueError(f"Metric {key!r}: step index {step!r} must be an int.")
    index = int(step)
    if not INT64_MIN <= index <= INT64_MAX:
        raise InvalidValueError(
            f"Metric {key!r}: step index {_short(index)} is outside the int64 range "
            f"[{INT64_MIN}, {INT64_MAX}]. Hint: log a smaller step index."
        )
    return index


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record a metric value, optionally at a step index (epoch, iteration).

    NaN, ±inf and -0.0 are kept exactly. Values are buffered and durable when the step ends.
    """
    check_name("metric", key)
    number = _as_float(key, value)
    if step is not None:
        step = _as_step(key, step)
    recorder = current_recorder.get()
    if recorder is not None:
        recorder.add_metric(key, number, step, time.time())


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Record several metrics at once (same step index)."""
    for key, value in metrics.items():
        log_metric(key, value, step)


def log_param(key: str, value: Any) -> None:
    """Record one parameter of the current step (any JSON-able value)."""
    log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    """Record parameters of the current step. Re-logging a key with another value is an error."""
    for key in params:
        check_name("param", key)
    recorder = current_recorder.get()
    if recorder is not None:
        recorder.sinks.params(recorder.run_id, recorder.step_run_id, dict(params))


def set_tag(key: str, value: str) -> None:
    """Tag the current run (text values; ``qflow runs --tag key=value`` filters on them)."""
    check_name("tag", key)
    recorder = current_recorder.get()
    if recorder is not None:
        recorder.sinks.tags(recorder.run_id, {key: str(value)})


def log_artifact(path: str | Path, name: str | None = None) -> None:
    """Store a file or folder with the run, labelled ``name`` (default: its file name).

    The label is checked (no ``..``, no absolute paths) and never used as a storage path.
    """
    source = Path(path)
    if not source.exists():
        raise InvalidValueError(
            f"Artifact {str(path)!r} does not exist. Hint: write the file before logging it."
        )
    label = check_artifact_path(name if name is not None else source.name)
    recorder = current_recorder.get()
    if recorder is not None:
        recorder.sinks.artifact(recorder.run_id, recorder.step_run_id, label, source)


def log_figure(figure: Any, name: str) -> None:
    """Store a matplotlib figure as PNG or a plotly figure as HTML, labelled ``name``."""
    label = check_artifact_path(name)
    module = type(figure).__module__
    if module.startswith("plotly"):
        data = figure.to_html(include_plotlyjs="cdn").encode()
        if not label.endswith(".html"):
            label += ".html"
    elif hasattr(figure, "savefig"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = buffer.getvalue()
        if not label.endswith(".png"):
            label += ".png"
    else:
        raise InvalidValueError(
            f"Figure {name!r} is a {type(figure).__name__}; qf.log_figure takes a matplotlib "
            "Figure or a plotly Figure."
        )
    recorder = current_recorder.get()
    if recorder is not None:
        recorder.sinks.artifact(recorder.run_id, recorder.step_run_id, label, data)
