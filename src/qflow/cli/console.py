"""Shared rich consoles and small output helpers for the CLI."""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

from rich.console import Console


class _Console(Console):
    """A console whose reader may go away (``qflow runs | head -1``) without ending the
    command: rich would ``SystemExit(1)``, making a run that succeeded look failed."""

    def on_broken_pipe(self) -> None:
        if not release_closed_output():
            super().on_broken_pipe()
        self.quiet = True  # nobody reads on: drop the rest


# Piped output is read by people in logs too: give tables room instead of wrapping at 80.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
out: Console = _Console(highlight=False, width=_WIDTH)
err: Console = _Console(stderr=True, highlight=False, width=_WIDTH)


def _reader_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe (or terminal) nobody reads any more."""
    poll = getattr(select, "poll", None)
    if poll is None:  # no poll(): the broken pipe can only have been ours
        return True
    poller = poll()
    try:
        poller.register(fd, select.POLLOUT)
    except (OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))


def release_closed_output() -> bool:
    """Point stdout and stderr whose reader went away (``qflow … | head -1``) at /dev/null,
    so nothing more (not even the flush at exit) fails on them; True if one had.

    As the Python docs recommend for SIGPIPE (``os.dup2`` of /dev/null). The reader chose to
    stop reading: the command goes on and ends with its own exit code, so a run that
    succeeded exits 0 and a failed one 1. This must happen where qflow writes, not around
    the app: typer turns any EPIPE inside a command into ``sys.exit(1)``.
    """
    released = False
    for fd in (1, 2):
        if _reader_gone(fd):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
            released = True
    return released


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour, no wrapping."""
    try:
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))  # noqa: T201
        sys.stdout.flush()
    except BrokenPipeError:
        if not release_closed_output():
            raise


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
