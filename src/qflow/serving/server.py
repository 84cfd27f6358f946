"""Run the prediction server with uvicorn (``qflow models serve``)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from qflow.errors import MissingExtraError, QFlowError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ``QFlowError`` naming the address if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise QFlowError(
            f"Cannot serve on {host}:{port}: {exc.strerror or exc}.\n"
            "Hint: pick another port with --port, or stop what listens there."
        ) from exc
    return sock


def serve(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    pin: bool = False,
    check_every: float = 2.0,
    max_body_bytes: int | None = None,
    project_dir: str | Path | None = None,
    registry: str | None = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Load ``ref`` (hash-checked), bind ``host:port``, then call ``on_ready`` and serve until
    interrupted: nothing says "serving" before the address is really listening.
    ``registry`` is ``qflow`` or ``mlflow`` (default: the project's configured one)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError.for_extra(exc.name or "fastapi", "server") from exc

    from qflow.registry.api import configured
    from qflow.serving.app import MAX_BODY_BYTES, create_app
    from qflow.serving.live import LiveModel

    live = LiveModel(configured(project_dir, registry), ref, pin=pin, check_every=check_every)
    app = create_app(live, max_body_bytes=max_body_bytes or MAX_BODY_BYTES)
    sock = bind(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(live.current.record.name, live.current.record.version)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
