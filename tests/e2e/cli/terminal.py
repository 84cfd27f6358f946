"""Drive the real ``qflow`` console script as a user does: in a pseudo-terminal or a pipe.

Every command runs in a fresh process with a fixed 120x40 terminal, ``TERM=xterm-256color``
and colours allowed (``NO_COLOR``/``FORCE_COLOR`` unset), so rich's live display is on
exactly as in a user's shell. Screen text is matched with its ANSI codes stripped.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pexpect

if TYPE_CHECKING:
    from qflow.client.client import RunView

QFLOW = Path(sys.executable).with_name("qflow")
"""The console script installed next to the interpreter running the tests."""

ROWS, COLUMNS = 40, 120
TIMEOUT = 60.0
"""Seconds any one command may take before the test fails as hung."""

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase line, show/hide cursor
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: window titles, hyperlinks
    r"|\x1b[()][0-9A-Za-z]|\x1b[=>78]"  # charset selection, keypad modes, save/restore
)

TRACEBACK = "Traceback (most recent call last)"


def strip_ansi(raw: bytes | str) -> str:
    """``raw`` as the words a user reads: no escape codes, no carriage returns."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return _ANSI.sub("", text).replace("\r", "")


def environment(**extra: str) -> dict[str, str]:
    """The user's environment for a terminal session, with the project's defaults."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "NO_COLOR",
            "FORCE_COLOR",
            "COLUMNS",
            "LINES",
            "QFLOW_STORE",
            "QFLOW_ARTIFACTS",
            "QFLOW_TRACKING_URI",
            "PYTEST_CURRENT_TEST",
        }
    }
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


@dataclass
class Session:
    """A command running in a pseudo-terminal; ``screen`` is everything it showed so far."""

    child: pexpect.spawn[bytes]
    log: io.BytesIO

    @property
    def screen(self) -> str:
        return strip_ansi(self.log.getvalue())

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[bytes]:
        """Wait until ``pattern`` (a regex) appears; fail with the screen if it never does."""
        try:
            self.child.expect(pattern.encode(), timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            raise AssertionError(
                f"{pattern!r} never appeared ({type(exc).__name__}); screen:\n{self.screen}"
            ) from None
        match = self.child.match
        assert isinstance(match, re.Match)
        return match

    def end(self) -> None:
        """Kill the command and every process of its group (its workers), if still alive."""
        if self.child.isalive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
        self.child.close(force=True)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the command to end and return its exit status as a shell's ``$?`` shows it
        (128 + N when a signal N ended it); fail if it hangs."""
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT:
            self.end()
            raise AssertionError(
                f"still running after {timeout:.0f}s; screen:\n{self.screen}"
            ) from None
        self.child.close()
        if self.child.signalstatus is not None:  # as a shell reports it in $?
            return 128 + int(self.child.signalstatus)
        status = self.child.exitstatus
        assert status is not None
        return int(status)


def spawn(args: list[str], cwd: Path, command: Path = QFLOW, **env: str) -> Session:
    """Start ``qflow ARGS`` (or ``command``) in a fresh 120x40 pseudo-terminal."""
    log = io.BytesIO()
    child = pexpect.spawn(
        str(command),
        args,
        cwd=str(cwd),
        env=environment(**env),
        dimensions=(ROWS, COLUMNS),
        timeout=TIMEOUT,
    )
    child.logfile_read = log
    session = Session(child, log)
    _STARTED.append(session)
    return session


_STARTED: list[Session] = []


def end_all() -> None:
    """End every command a test started that is still running (a test that failed early)."""
    while _STARTED:
        _STARTED.pop().end()


def in_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``qflow ARGS`` in a pseudo-terminal to the end: exit status and screen text."""
    session = spawn(args, cwd)
    status = session.finish()
    return status, session.screen


@contextlib.contextmanager
def stored_run(run_id: str, project: Path) -> Iterator[RunView]:
    """The run as ``qflow.Client`` shows it to a user."""
    from qflow.client import Client

    client = Client(project)
    try:
        yield client.run(run_id)
    finally:
        client.metadata.dispose()


def recorded(run_id: str, project: Path) -> tuple[str, dict[str, str]]:
    """The run's status and each step run's status by name (``0_load``)."""
    with stored_run(run_id, project) as run:
        return str(run.status), {step.record.name: str(step.record.status) for step in run.steps}
