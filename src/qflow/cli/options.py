"""Option types shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-C", help="Project folder (default: found from the current one)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
OverridesArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Config overrides: key=value, +key=value to add, ~key to remove."),
]


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    """``key=value`` strings into a dict; a pair without '=' is a usage error."""
    tags: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"tag {pair!r} must look like key=value")
        tags[key] = value
    return tags
