"""Run the prediction server with uvicorn (``qflow models serve``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qflow.errors import MissingExtraError


def serve(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    pin: bool = False,
    check_every: float = 2.0,
    max_body_bytes: int | None = None,
    project_dir: str | Path | None = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Load ``ref`` (hash-checked) and serve it until interrupted."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError.for_extra(exc.name or "fastapi", "server") from exc

    from qflow.registry.builtin import QFlowRegistry
    from qflow.serving.app import MAX_BODY_BYTES, create_app
    from qflow.serving.live import LiveModel

    live = LiveModel(QFlowRegistry.for_project(project_dir), ref, pin=pin, check_every=check_every)
    app = create_app(live, max_body_bytes=max_body_bytes or MAX_BODY_BYTES)
    if on_ready is not None:
        on_ready(live.current.record.name, live.current.record.version)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
