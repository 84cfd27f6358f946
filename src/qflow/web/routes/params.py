"""Path and dependency types the runs routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi import Path as PathParam

from qflow.web.context import Context, context

Ctx = Annotated[Context, Depends(context)]
RunId = Annotated[str, PathParam(min_length=1, max_length=64, description="Run id or prefix")]
ArtifactKey = Annotated[str, PathParam(min_length=1, max_length=128, description="sha256 key")]
