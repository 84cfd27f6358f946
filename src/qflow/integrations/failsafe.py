"""What every external tracker does when its service fails: warn once and step aside.

A tracker that is down or misconfigured must never fail a workflow nor slow it silently. The
first failure logs ONE warning (what failed, that the run goes on, how to replay it later with
``qflow sync``) and switches the tracker off for the rest of the run, so a dead server costs
one timeout, not one per call. In strict mode (``qflow sync``) the failure is raised instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

from qflow.errors import TrackerError

logger = logging.getLogger("qflow.trackers")


class Failsafe:
    """Guards a tracker's hook bodies: ``with self.failsafe.guard("before_step"): ...``."""

    def __init__(
        self, label: str, name: str, target: str, *, strict: bool = False, whole: bool = False
    ) -> None:
        self.label = label
        self.whole = whole
        """Show the whole error message, not its first line."""
        self.name = name
        self.target = target
        self.strict = strict
        self.disabled = False
        self.run_id: str | None = None
        self._env_added: list[str] = []

    def start(self, run_id: str) -> None:
        """A new run: the tracker is on again until it fails."""
        self.run_id = run_id
        self.disabled = False

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.fail(what, exc)

    def fail(self, what: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {_whole(exc) if self.whole else _first_line(exc)}"
        if self.strict:
            raise TrackerError(
                f"{self.label} tracker at {self.target} failed in {what}: {reason}.\n"
                f"Hint: check that {self.target} is reachable and accepts writes."
            ) from exc
        if self.disabled:
            return
        self.disabled = True
        run = self.run_id or "RUN"
        logger.warning(
            "%s tracker at %s failed in %s (%s). It is off for the rest of run %s; the run "
            "goes on and QFlow's own store keeps everything. Once %s is reachable, replay the "
            "run with: qflow sync %s --tracker %s",
            self.label,
            self.target,
            what,
            reason,
            run,
            self.target,
            run,
            self.name,
        )

    def set_env(self, values: Mapping[str, str]) -> None:
        """Set environment variables the user has not set, for the run's duration."""
        for key, value in values.items():
            if key not in os.environ:
                os.environ[key] = value
                self._env_added.append(key)

    def restore_env(self) -> None:
        for key in self._env_added:
            os.environ.pop(key, None)
        self._env_added.clear()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 300 else line[:297] + "..."


def _whole(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 3000 else text[:2997] + "..."
