"""A run's artifacts: safe previews, bytes, and HTML figures in a sandboxed frame."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response

from qflow.errors import ArtifactNotFoundError
from qflow.web.context import Context
from qflow.web.previews import KEY, image_type, preview, read_bytes
from qflow.web.routes.params import ArtifactKey, Ctx, RunId
from qflow.web.schemas import ERRORS

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)


def run_artifact(ctx: Context, run_id: str, key: str) -> tuple[Any, str]:
    """The artifact ``key`` if the run read, wrote or logged it; else a 404."""
    if not KEY.match(key):
        raise ArtifactNotFoundError(
            f"{key[:80]!r} is not an artifact key (64 lowercase hex digits, a sha256)."
        )
    run = ctx.metadata.get_run(run_id, summary=False)
    for step in ctx.metadata.step_runs(run.id):
        for name, ref in step.outputs.items():
            if ref.key == key:
                return ref, f"{step.name}.{name}"
        for name, ref in step.inputs.items():
            if ref.key == key:
                return ref, name
    for logged in ctx.metadata.run_artifacts(run.id):
        if logged.ref.key == key:
            return logged.ref, logged.name
    raise ArtifactNotFoundError(f"Run {run.id} has no artifact {key[:12]!r}.")


@router.get("/runs/{run_id}/artifacts/{key}/preview")
def artifact_preview(ctx: Ctx, run_id: RunId, key: ArtifactKey) -> dict[str, Any]:
    """A safe preview: image (see ``/raw``), table (first rows), JSON or text; pickles never."""
    ref, name = run_artifact(ctx, run_id, key)
    return preview(ctx.artifacts, ref, name)


@router.get("/runs/{run_id}/artifacts/{key}/raw", response_class=Response)
def artifact_raw(ctx: Ctx, run_id: RunId, key: ArtifactKey) -> Response:
    """The artifact's bytes: images inline, anything else as a download."""
    ref, name = run_artifact(ctx, run_id, key)
    if ref.serializer == "collection":
        raise ArtifactNotFoundError("A mapped step's list has no bytes of its own.")
    data = read_bytes(ctx.artifacts, ref)
    media = image_type(data[:16])
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "artifact"
    if ref.serializer == "dir":  # a folder is stored as a tar of its files
        media = None
        safe_name = safe_name if safe_name.endswith(".tar") else safe_name + ".tar"
    headers = {"Content-Security-Policy": "sandbox; default-src 'none'"}
    if media is None:
        headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    kind = "application/x-tar" if ref.serializer == "dir" else "application/octet-stream"
    return Response(data, media_type=media or kind, headers=headers)


_NO_SHARE = b'<style>.modebar-btn[data-title^="Share"]{display:none !important}</style>\n'
_PLOTLY_CDN = re.compile(rb'<script[^>]*\ssrc="https://cdn\.plot\.ly/[^"]*"[^>]*>\s*</script>')


@router.get("/runs/{run_id}/artifacts/{key}/figure", response_class=Response)
def artifact_figure(ctx: Ctx, run_id: RunId, key: ArtifactKey, request: Request) -> Response:
    """An HTML figure (``qf.log_figure`` of a Plotly figure) to show in a sandboxed frame:
    Plotly's CDN script is replaced by the server's copy; the page runs in an opaque origin
    (no cookies, storage or API of this server) and may load nothing but that script."""
    ref, name = run_artifact(ctx, run_id, key)
    if not name.lower().endswith((".html", ".htm")) or ref.pickled:
        raise ArtifactNotFoundError(f"{name[:100]!r} is not an HTML figure.")
    local = b'<script src="/static/vendor/plotly.min.js"></script>'
    # No "Share chart" (Plotly Cloud upload) button; the sandbox and CSP block it anyway.
    data = _NO_SHARE + _PLOTLY_CDN.sub(local, read_bytes(ctx.artifacts, ref))
    origin = f"{request.url.scheme}://{request.url.netloc}"
    policy = (
        "sandbox allow-scripts; default-src 'none'; "
        f"script-src {origin}/static/vendor/plotly.min.js 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'self'"
    )
    headers = {"Content-Security-Policy": policy, "X-Frame-Options": "SAMEORIGIN"}
    return Response(data, media_type="text/html", headers=headers)
