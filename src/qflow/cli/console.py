"""Shared rich consoles and small output helpers for the CLI."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from rich.console import Console

# Piped output is read by people in logs too: give tables room instead of wrapping at 80.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping."""
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))  # noqa: T201


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = end - start
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


STATUS_STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "failed": "red",
    "crashed": "red",
    "killed": "red",
    "running": "yellow",
    "skipped": "dim",
    "pending": "dim",
}


def status(text: str) -> str:
    return f"[{STATUS_STYLE.get(text, 'white')}]{text}[/]"
