"""One table maps QFlow errors to HTTP statuses; every error response is the same JSON.

``{"error": {"code": "not_found", "message": "No run with id 'x'.", "field": null}}``
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from qflow.errors import (
    ArtifactIntegrityError,
    ConfigError,
    GraphValidationError,
    InvalidNameError,
    InvalidValueError,
    MissingExtraError,
    ModelIntegrityError,
    NotFoundError,
    QFlowError,
    SignatureMismatchError,
    StoreError,
    TraceError,
)
from qflow.store.filters import FilterError
from qflow.web.launcher import TooManyLaunchesError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request, Response

logger = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
ERROR_STATUS: tuple[tuple[type[QFlowError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (FilterError, 400, "invalid_filter"),
    (ArtifactIntegrityError, 400, "artifact_mismatch"),
    (TooManyLaunchesError, 429, "too_many_launches"),
    (SignatureMismatchError, 422, "signature_mismatch"),
    (ConfigError, 422, "invalid_config"),
    (TraceError, 422, "invalid_workflow"),
    (GraphValidationError, 422, "invalid_workflow"),
    (InvalidNameError, 422, "invalid_name"),
    (InvalidValueError, 422, "invalid_value"),
    (ModelIntegrityError, 409, "model_integrity"),
    (MissingExtraError, 501, "missing_extra"),
    (StoreError, 503, "store_unavailable"),
    (QFlowError, 400, "bad_request"),
)


class HTTPError(Exception):
    """An error raised by the web layer itself (auth, size, CSRF, bad path)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def status_for(exc: QFlowError) -> tuple[int, str]:
    for cls, status, code in ERROR_STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, StoreError):
                return _store_status(exc) or (status, code)
            return status, code
    return 400, "bad_request"


def _store_status(exc: BaseException) -> tuple[int, str] | None:
    """A StoreError caused by the request (a constraint, a missing row), not by the database."""
    from sqlalchemy.exc import DataError, IntegrityError, NoResultFound

    if isinstance(exc.__cause__, NoResultFound):
        return 404, "not_found"
    if isinstance(exc.__cause__, IntegrityError | DataError):
        return 409, "conflict"
    return None


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()


def json_error(status: int, code: str, message: str, field: str | None = None) -> Response:
    from fastapi import Response

    return Response(error_body(code, message, field), status, media_type="application/json")


def install(app: FastAPI) -> None:
    """Exception handlers: QFlow errors by the table, validation as 422, the rest as 500."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(QFlowError)
    async def qflow_error(request: Request, exc: QFlowError) -> Response:
        status, code = status_for(exc)
        field = getattr(exc, "field", None)
        return json_error(status, code, str(exc), field if isinstance(field, str) else None)

    @app.exception_handler(HTTPError)
    async def http_error(request: Request, exc: HTTPError) -> Response:
        return json_error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors: Any = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return json_error(422, "invalid_request", message, where or None)

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s", request.url.path)
        return json_error(500, "internal", f"{type(exc).__name__}: {exc}")
