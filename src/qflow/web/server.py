"""Run the tracking server with uvicorn (``qflow ui``, ``qflow server``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from qflow.errors import MissingExtraError
from qflow.web.settings import Settings


def serve(settings: Settings, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Check the settings (no token on a public address is refused), then serve forever.

    ``on_ready`` gets the sign-in URL (with the token) before the server starts.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError.for_extra(exc.name or "fastapi", "server") from exc
    from qflow.web.app import Settings, create_app

    assert isinstance(settings, Settings)
    checked = settings.checked()
    app = create_app(checked)
    if on_ready is not None:
        host = checked.host if checked.host not in ("0.0.0.0", "::") else "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{checked.port}/runs?token={checked.token}")
    uvicorn.run(
        app,
        host=checked.host,
        port=checked.port,
        log_level=os.environ.get("QFLOW_SERVER_LOG_LEVEL", "warning"),
        access_log=False,
        limit_concurrency=256,
        timeout_keep_alive=30,
        # Ctrl-C must not wait for a browser's open run stream (it lasts as long as the run).
        timeout_graceful_shutdown=2,
    )
