"""``qflow server``: a team tracking server over shared stores."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.cli import console
from qflow.cli.token import TokenFileOption, TokenOption, resolve_token


def server(
    store: Annotated[
        str, typer.Option("--store", help="Metadata store URL, e.g. postgresql://user@db/qflow.")
    ],
    artifacts: Annotated[
        str, typer.Option("--artifacts", help="Artifact store URL: a folder or s3://…, gs://…")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 5000,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="A host name clients use (repeatable; DNS rebinding)."),
    ] = None,
) -> None:
    """Serve the REST API and dashboard over shared stores; refuses to listen beyond this
    machine without a token.

    The access token comes from --token-file FILE or --token (which other users can read in
    ps), else $QFLOW_SERVER_TOKEN.
    """
    from qflow.web import Settings, serve

    settings = Settings(
        store_url=store,
        artifacts_url=artifacts,
        token=resolve_token(token, token_file),
        host=host,
        port=port,
        extra_allowed_hosts=tuple(allowed_host or ()),
    )

    def ready(url: str) -> None:
        console.err.print(f"QFlow tracking server: [bold]{url}[/]  (Ctrl-C stops it)")

    serve(settings, on_ready=ready)
