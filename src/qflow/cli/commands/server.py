"""``qflow server``: a team tracking server over shared stores."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from qflow.cli import console


def server(
    store: Annotated[
        str, typer.Option("--store", help="Metadata store URL, e.g. postgresql://user@db/qflow.")
    ],
    artifacts: Annotated[
        str, typer.Option("--artifacts", help="Artifact store URL: a folder or s3://…, gs://…")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 5000,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Access token (default: $QFLOW_SERVER_TOKEN)."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="A host name clients use (repeatable; DNS rebinding)."),
    ] = None,
) -> None:
    """Serve the REST API and dashboard over shared stores; refuses to listen beyond this
    machine without a token."""
    from qflow.web import Settings, serve

    settings = Settings(
        store_url=store,
        artifacts_url=artifacts,
        token=token or os.environ.get("QFLOW_SERVER_TOKEN") or None,
        host=host,
        port=port,
        extra_allowed_hosts=tuple(allowed_host or ()),
    )

    def ready(url: str) -> None:
        console.err.print(f"QFlow tracking server: [bold]{url}[/]  (Ctrl-C stops it)")

    serve(settings, on_ready=ready)
