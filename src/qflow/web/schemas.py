"""Request bodies of the API (pydantic); responses are plain JSON documented per route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(min_length=1, max_length=200)
    overrides: list[str] = Field(default_factory=list, max_length=200)


class ConfigRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: list[str] = Field(default_factory=list, max_length=200)


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request (e.g. an invalid filter)"},
    401: {"model": ErrorResponse, "description": "Token missing or wrong"},
    404: {"model": ErrorResponse, "description": "No such run, step, artifact or model"},
    422: {"model": ErrorResponse, "description": "Invalid parameter"},
}
