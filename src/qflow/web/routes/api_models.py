"""Model registry API (read through ``qflow.registry``) and predictions for an uploaded CSV."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from qflow.web.context import Context, context
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api/models", tags=["models"], responses=ERRORS)
Ctx = Annotated[Context, Depends(context)]
Name = Annotated[str, PathParam(min_length=1, max_length=200)]
Ref = Annotated[str, PathParam(min_length=1, max_length=300, description="NAME@ALIAS, NAME/3")]


def _version(v: Any) -> dict[str, Any]:
    data = dataclasses.asdict(v)
    data["aliases"] = list(v.aliases)
    return data


@router.get("")
def list_models(ctx: Ctx) -> list[dict[str, Any]]:
    """Registered models with their latest version, aliases and tags."""
    return [dataclasses.asdict(m) for m in ctx.registry.models()]


@router.get("/{name}")
def get_model(ctx: Ctx, name: Name) -> dict[str, Any]:
    """A model: its versions (newest first) and alias history."""
    ctx.registry.store.require_model(name)
    model = next(m for m in ctx.registry.models() if m.name == name)
    versions = ctx.registry.versions(name)
    return {
        **dataclasses.asdict(model),
        "versions": [_version(v) for v in reversed(versions)],
        "alias_history": [dataclasses.asdict(c) for c in ctx.registry.alias_history(name)],
    }


@router.get("/{name}/versions/{version}")
def get_version(
    ctx: Ctx, name: Name, version: Annotated[int, PathParam(ge=1, le=2**31)]
) -> dict[str, Any]:
    """One version in full: run, step, output, signature, environment, pickle flag."""
    return _version(ctx.registry.get(f"{name}/{version}"))


class AliasMove(BaseModel):
    """Point the alias at ``version``, or remove it (``null``)."""

    version: int | None = Field(default=None, ge=1, le=2**31)


class Description(BaseModel):
    """A description of the model, or of one ``version``."""

    text: str = Field(max_length=20_000)
    version: int | None = Field(default=None, ge=1, le=2**31)


class Tags(BaseModel):
    """Tags of the model, or of one ``version``."""

    tags: dict[
        Annotated[str, Field(min_length=1, max_length=250)], Annotated[str, Field(max_length=5000)]
    ] = Field(max_length=50)
    version: int | None = Field(default=None, ge=1, le=2**31)


def _ref(name: str, version: int | None) -> str:
    return name if version is None else f"{name}/{version}"


@router.post("/{name}/aliases/{alias}")
def move_alias(
    ctx: Ctx,
    name: Name,
    alias: Annotated[str, PathParam(min_length=1, max_length=200)],
    move: AliasMove,
) -> dict[str, Any]:
    """Set or (``version: null``) remove an alias; the change is kept in the alias history."""
    if move.version is None:
        change = ctx.registry.delete_alias(name, alias)
    else:
        change = ctx.registry.set_alias(name, alias, move.version)
    return dataclasses.asdict(change)


@router.post("/{name}/description")
def describe(ctx: Ctx, name: Name, body: Description) -> dict[str, str]:
    """Set the description of the model or of a version."""
    ctx.registry.describe(_ref(name, body.version), body.text)
    return {"ref": _ref(name, body.version), "description": body.text}


@router.post("/{name}/tags")
def tag(ctx: Ctx, name: Name, body: Tags) -> dict[str, Any]:
    """Set tags on the model or on a version."""
    ctx.registry.set_tags(_ref(name, body.version), dict(body.tags))
    return {"ref": _ref(name, body.version), "tags": body.tags}


@router.post("/{ref:path}/predict", response_class=Response)
async def predict(ctx: Ctx, ref: Ref, request: Request) -> Response:
    """Predictions for the CSV in the body (``text/csv``, or a form field ``file``): the
    input rows with a ``prediction`` column, as a CSV download. The upload is parsed as CSV
    only and checked against the model's signature."""
    from starlette.concurrency import run_in_threadpool

    from qflow.web.predict import predict_csv

    body = await _upload(request)
    data, version = await run_in_threadpool(predict_csv, ctx.models, ref, body)
    filename = f"{version.name}-{version.version}-predictions.csv"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
    return Response(
        data,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


async def _upload(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        from qflow.errors import SignatureMismatchError

        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise SignatureMismatchError("Send the CSV as the form field 'file'.", field="file")
        return await upload.read()
    return await request.body()
