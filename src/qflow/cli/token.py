"""Where ``qflow ui`` and ``qflow server`` take their access token from: a file
(``--token-file``) or ``$QFLOW_SERVER_TOKEN``, so it never has to be on the command line, where
every user of the machine can read it (``ps``, ``/proc/PID/cmdline``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from qflow.cli import console

TOKEN_ENV = "QFLOW_SERVER_TOKEN"

TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=f"Access token. Other users of this machine can read it in ps: prefer "
        f"--token-file or ${TOKEN_ENV}.",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="Read the access token from this file (its first line; keep it private: chmod 600).",
        dir_okay=False,
    ),
]


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from ``--token-file`` or ``--token`` (only one may be given), else
    ``$QFLOW_SERVER_TOKEN``; None lets the server make one."""
    if token is not None and token_file is not None:
        raise typer.BadParameter("give --token or --token-file, not both.", param_hint="--token")
    if token_file is None:
        return token or os.environ.get(TOKEN_ENV) or None
    try:
        text = token_file.read_text(encoding="utf-8")
        mode = token_file.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"cannot read {str(token_file)!r} ({exc}). Write the token into it "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))' > FILE).",
            param_hint="--token-file",
        ) from exc
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise typer.BadParameter(
            f"{str(token_file)!r} is empty; its first line must be the token.",
            param_hint="--token-file",
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        console.err.print(
            Text.assemble(
                ("Warning: ", "yellow"),
                f"other users may read the token file {token_file} "
                f"(mode {stat.S_IMODE(mode):o}). Hint: chmod 600 {token_file}",
            )
        )
    return lines[0].strip()
