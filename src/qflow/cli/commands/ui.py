"""``qflow ui``: the dashboard for this project's store, on 127.0.0.1."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption


def ui(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="Address; anything but loopback needs --token.")
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Access token (default: $QFLOW_SERVER_TOKEN, else a random one)."
        ),
    ] = None,
    project: ProjectOption = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="A host name clients use (repeatable; DNS rebinding)."),
    ] = None,
) -> None:
    """Open the web dashboard (runs, metrics, graphs, models, launches) for this project."""
    from qflow.config.project import existing_project
    from qflow.store.location import default_artifacts_url, default_store_url
    from qflow.web import Settings, serve

    found = existing_project(project)
    settings = Settings(
        store_url=default_store_url(found.root),
        artifacts_url=default_artifacts_url(found.root),
        project_dir=found.root,
        token=token or os.environ.get("QFLOW_SERVER_TOKEN") or None,
        host=host,
        port=port,
        extra_allowed_hosts=tuple(allowed_host or ()),
    )

    def ready(url: str) -> None:
        console.err.print(f"QFlow UI for {found.root}: [bold]{url}[/]  (Ctrl-C stops it)")

    serve(settings, on_ready=ready)
