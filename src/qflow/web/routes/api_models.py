"""Model registry API (read through ``qflow.registry``) and predictions for an uploaded CSV."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam

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
