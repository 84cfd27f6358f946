"""``qflow ui``: the dashboard for this project's store, on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.options import ProjectOption
from qflow.cli.token import TokenFileOption, TokenOption, resolve_token


def ui(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="Address; anything but loopback needs a token.")
    ] = "127.0.0.1",
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    project: ProjectOption = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="A host name clients use (repeatable; DNS rebinding)."),
    ] = None,
) -> None:
    """Open the web dashboard (runs, metrics, graphs, models, launches) for this project.

    The access token comes from --token-file FILE or --token (which other users can read in
    ps), else $QFLOW_SERVER_TOKEN; without one, a random token is made and printed in
    the sign-in URL.
    """
    from qflow.config.project import existing_project
    from qflow.store.location import default_artifacts_url, default_store_url
    from qflow.web import Settings, serve

    found = existing_project(project)
    settings = Settings(
        store_url=default_store_url(found.root),
        artifacts_url=default_artifacts_url(found.root),
        project_dir=found.root,
        token=resolve_token(token, token_file),
        host=host,
        port=port,
        extra_allowed_hosts=tuple(allowed_host or ()),
    )

    def ready(url: str) -> None:
        console.err.print(f"QFlow UI for {found.root}: [bold]{url}[/]  (Ctrl-C stops it)")

    serve(settings, on_ready=ready)
