"""The prediction server: ``POST /predict``, ``GET /health``, ``GET /metadata``.

Bad input never reaches the model: the body is size-capped (413 from ``Content-Length``
before any byte is read), parsed (400), and checked against the signature (422 naming the
field). Every error is JSON: ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

# FastAPI resolves endpoint annotations at runtime, so these are real imports; this module is
# imported only when a server starts.
from fastapi import FastAPI, Request, Response

from qflow.errors import SignatureMismatchError

if TYPE_CHECKING:
    from qflow.registry.signature import Signature
    from qflow.serving.live import LiveModel, Loaded

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 16 * 1024 * 1024
_CSV_TYPES = ("text/csv", "application/csv", "text/plain")


class BadRequest(Exception):
    """An input problem that becomes a 4xx response."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _error(status: int, code: str, message: str, field: str | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "field": field}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def parse_json(payload: Any, signature: Signature | None) -> Any:
    """JSON in any of the usual shapes → model input.

    Records: ``[{...}, ...]``, ``{"records": [...]}``, ``{"dataframe_records": [...]}``;
    split: ``{"columns": [...], "data": [[...]]}`` (or under ``"dataframe_split"``);
    tensors: ``{"inputs": [[...]]}`` or ``{"instances": [[...]]}``.
    """
    if isinstance(payload, dict):
        split = payload.get("dataframe_split", payload)
        if isinstance(split, dict) and "columns" in split and "data" in split:
            if signature is None or signature.is_tensor:
                return _plain_frame(split.get("data"), split.get("columns"))
            return signature.from_split(split["columns"], split["data"])
        for key in ("records", "dataframe_records", "inputs", "instances"):
            if key in payload:
                payload = payload[key]
                if signature is not None and not signature.is_tensor:
                    _rows_are_records(payload, key, signature)
                break
        else:
            keys = ", ".join(map(repr, payload)) or "none"
            raise SignatureMismatchError(
                f"The JSON object has keys {keys}; send records (a list of objects, or "
                "{'records': [...]}), {'columns': [...], 'data': [[...]]} or {'inputs': [...]}.",
                field="body",
                code="wrong_shape",
            )
    if signature is not None:
        if not signature.is_tensor:
            _rows_are_records(payload, "records", signature)
        return signature.from_records(payload)
    if not isinstance(payload, list) or not payload:
        raise SignatureMismatchError("The input has no rows.", field="records", code="empty")
    if all(isinstance(r, dict) for r in payload):
        return _plain_frame(payload, None)
    import numpy as np

    try:
        return np.asarray(payload)
    except ValueError as exc:
        raise SignatureMismatchError(
            f"'inputs' is not a rectangular array: {exc}.", field="inputs", code="wrong_shape"
        ) from exc


def _rows_are_records(payload: Any, key: str, signature: Signature) -> None:
    """Rows sent as lists to a model of named columns: say which shapes fit, with the names."""
    if not isinstance(payload, list):
        return
    for row, record in enumerate(payload):
        if isinstance(record, list):
            names = list(signature.names)
            example = ", ".join(f'"{n}": ...' for n in names[:3]) + (", ..." if names[3:] else "")
            raise SignatureMismatchError(
                f"{key}[{row}] is a list of {len(record)} values, but the model takes named "
                f"columns ({signature.describe()}).\nHint: send records [{{{example}}}]"
                f' or {{"columns": {json.dumps(names)}, "data": [[...]]}}.',
                field=f"{key}[{row}]",
                code="wrong_shape",
            )


def check_finite(inputs: Any) -> None:
    """NaN and ±Infinity (JSON extensions Python accepts) fail the signature check, naming
    the column and row, before the model sees them."""
    import numpy as np
    import pandas as pd

    if isinstance(inputs, pd.DataFrame):
        numeric = inputs.select_dtypes(include=["number"])
        bad = ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            name = str(numeric.columns[column])
            value = numeric.iloc[row, column]
            raise SignatureMismatchError(
                f"Column {name!r} row {row} is {_non_finite(value)}; the model's signature "
                "takes finite numbers.\nHint: drop or impute the missing or infinite values "
                "before sending (JSON has no NaN or Infinity).",
                field=name,
                code="not_finite",
            )
    elif isinstance(inputs, np.ndarray) and inputs.dtype.kind in "fc":
        bad = ~np.isfinite(inputs)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SignatureMismatchError(
                f"inputs{list(where)} is {_non_finite(inputs[where])}; the model takes finite "
                "numbers.\nHint: drop or impute the missing or infinite values before sending "
                "(JSON has no NaN or Infinity).",
                field=f"inputs{list(where)}",
                code="not_finite",
            )


def _non_finite(value: Any) -> str:
    number = float(value)
    return "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")


def _plain_frame(data: Any, columns: Any) -> Any:
    import pandas as pd

    try:
        return pd.DataFrame(data, columns=columns)
    except (TypeError, ValueError) as exc:
        raise SignatureMismatchError(
            f"The input is not a table: {exc}.", field="data", code="wrong_shape"
        ) from exc


def parse_csv(body: bytes, signature: Signature | None) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadRequest(400, "invalid_csv", f"The body is not valid CSV: {exc}.") from exc
    if signature is None:
        return frame
    return signature.check_frame(frame)


def _jsonable(predictions: Any) -> Any:
    tolist = getattr(predictions, "tolist", None)
    if callable(tolist):
        return tolist()
    to_numpy = getattr(predictions, "to_numpy", None)
    return to_numpy().tolist() if callable(to_numpy) else predictions


def describe(loaded: Loaded, live: LiveModel) -> dict[str, Any]:
    record = loaded.record
    return {
        "name": record.name,
        "version": record.version,
        "ref": str(live.ref),
        "follows_alias": live.follows,
        "aliases": list(record.aliases),
        "run_id": record.run_id,
        "step": record.step,
        "output": record.output,
        "artifact_key": record.artifact_key,
        "type": record.type_name,
        "pickled": record.pickled,
        "signature": record.signature,
        "environment": record.environment,
        "environment_hash": record.environment_hash,
        "description": record.description,
        "tags": record.tags,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "loaded_at": loaded.loaded_at,
    }


def create_app(live: LiveModel, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app for one served model reference."""
    app = FastAPI(title=f"QFlow model {live.ref}", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> Response:
        """200 ``ok`` while the version the reference points at is served; 503 ``degraded``
        (still serving the previous version) when the new alias target failed to load."""
        loaded = live.get()
        body: dict[str, Any] = {
            "status": "ok" if live.error is None else "degraded",
            "model": loaded.record.name,
            "version": loaded.record.version,
        }
        if live.error is not None:
            body["error"] = (
                f"{live.ref} points at version {live.wanted}, which could not be loaded "
                f"({live.error}); still serving version {loaded.record.version}."
            )
        status = 200 if live.error is None else 503
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        return describe(live.get(), live)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
            loaded = live.get()
            inputs = _parse(body, request.headers.get("content-type", ""), loaded.signature)
            check_finite(inputs)
        except BadRequest as exc:
            return _error(exc.status, exc.code, exc.message, exc.field)
        except SignatureMismatchError as exc:
            return _error(422, exc.code, str(exc), exc.field)
        try:
            predictions = loaded.model.predict(inputs)
        except Exception as exc:
            logger.info("prediction failed: %s", exc)
            return _error(
                422, "prediction_failed", f"The model could not predict on this input: {exc}"
            )
        body_out = {
            "predictions": _jsonable(predictions),
            "model": loaded.record.name,
            "version": loaded.record.version,
        }
        return Response(json.dumps(body_out), media_type="application/json")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal", f"{type(exc).__name__}: {exc}")

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise BadRequest(400, "bad_length", "Content-Length is not a number.") from None
        if size > limit:
            raise BadRequest(
                413,
                "too_large",
                f"The body is {size} bytes; the limit is {limit}. Send fewer rows per request "
                "or use batch inference: qflow predict MODEL input.csv -o out.parquet.",
                "body",
            )
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise BadRequest(413, "too_large", f"The body exceeds {limit} bytes.", "body")
    if not chunks.strip():
        raise BadRequest(400, "empty", "The body is empty. Send JSON records or CSV.", "body")
    return bytes(chunks)


def _parse(body: bytes, content_type: str, signature: Signature | None) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind in _CSV_TYPES:
        return parse_csv(body, signature)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(
            400,
            "invalid_json",
            f"The body is not valid JSON: {exc}. Hint: send CSV with Content-Type: text/csv.",
            "body",
        ) from exc
    return parse_json(payload, signature)
