"""``qflow scheduler``: a long-running loop that runs the project's schedules when they fire.

- Each run is a separate ``qflow run`` process (so code changes are picked up and a crash in
  a run cannot take the loop down); its output goes to ``.qflow/scheduler/logs/``. The run is
  tagged ``schedule=<id>`` and ``scheduled_for=<UTC time>``.
- A failing run is logged and recorded on the schedule (``last_status``); the loop goes on.
- On start, the loop says what fired while it was down (fire times after each schedule's
  ``cursor``) and, with ``catch_up="once"`` (the default), runs each such schedule once;
  with ``catch_up="skip"`` it only reports them.
- Runs are one at a time. A fire time that passes while another run is going is run once
  afterwards (several passed fire times of one schedule are one run, and the log says so).
- A broken entry of the schedule file (edited by hand: a cron that never fires, a missing
  workflow name …) is logged, once, and skipped; the other schedules run. A file that cannot
  be read at all (not JSON) is logged and read again at the next tick.

Time, sleeping and launching are injected, so tests drive the loop with a fake clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from qflow.ci.schedule import Schedule, ScheduleStore, fire_times, next_fire
from qflow.errors import QFlowError

CatchUp = Literal["once", "skip"]


@dataclass(frozen=True)
class Outcome:
    """What one scheduled launch did."""

    run_id: str | None
    status: str
    error: str | None = None


Launcher = Callable[[Schedule, float], Outcome]
"""Runs ``schedule`` for fire time ``scheduled_for`` (epoch seconds) and says how it went."""


def utc(moment: float) -> str:
    """``2025-01-31T03:00:00Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ScheduleLoop:
    """Runs due schedules; ``start()`` once, then ``tick()`` (or ``run()`` for the loop)."""

    def __init__(
        self,
        store: ScheduleStore,
        launcher: Launcher,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        log: Callable[[str], object] = print,
        catch_up: CatchUp = "once",
        poll: float = 60.0,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.clock = clock
        self.sleep = sleep
        self.log = log
        self.catch_up = catch_up
        self.poll = poll
        self._reported: set[str] = set()

    def _report(self, problems: set[str]) -> None:
        """Log each problem once, for as long as it lasts."""
        for message in sorted(problems - self._reported):
            self.log(message)
        self._reported = problems

    def schedules(self) -> list[Schedule]:
        """The schedules that can run; broken entries and an unreadable file are logged."""
        try:
            schedules, broken = self.store.load()
        except QFlowError as exc:
            self._report({f"error: cannot read the schedules, none run until fixed: {exc}"})
            return []
        self._report(
            {
                f"skipped: {b.id} ({b.workflow}) is broken: {b.error.rstrip('.')}. "
                f"Hint: fix it in {self.store.path}, or qflow schedule remove {b.id}"
                for b in broken
            }
        )
        return schedules

    def missed(self, now: float) -> list[tuple[Schedule, list[float]]]:
        """Schedules with fire times in ``(cursor, now]``, and those times."""
        found = []
        for schedule in self.schedules():
            times = fire_times(schedule.cron, schedule.cursor, now)
            if times:
                found.append((schedule, times))
        return found

    def start(self) -> list[Outcome]:
        """Report what fired while no scheduler ran; run each of those once unless skipping."""
        now = self.clock()
        schedules = self.schedules()
        self.log(f"scheduler: {len(schedules)} schedule(s), catch-up {self.catch_up}")
        outcomes = []
        for schedule, times in self.missed(now):
            count = f"{len(times)} run{'s' if len(times) != 1 else ''}"
            span = utc(times[0]) if len(times) == 1 else f"{utc(times[0])} .. {utc(times[-1])}"
            action = "running it once now" if self.catch_up == "once" else "not running them"
            self.log(
                f"missed: {schedule.id} ({schedule.workflow}, '{schedule.cron}') missed {count} "
                f"while the scheduler was down ({span}); {action}"
            )
            if self.catch_up == "once":
                outcomes.append(self._fire(schedule, times[-1], now))
            else:
                self._record(schedule.id, cursor=now)
        return outcomes

    def tick(self) -> list[Outcome]:
        """Run every schedule that fired since its cursor (each once)."""
        now = self.clock()
        outcomes = []
        for schedule, times in self.missed(now):
            if len(times) > 1:
                self.log(
                    f"late: {schedule.id} ({schedule.workflow}) fired {len(times)} times while "
                    "the scheduler was busy; running it once"
                )
            outcomes.append(self._fire(schedule, times[-1], now))
        return outcomes

    def seconds_to_next(self) -> float:
        """How long to sleep: until the next fire time, at most ``poll`` (new schedules)."""
        now = self.clock()
        upcoming = [next_fire(s.cron, max(s.cursor, now)) for s in self.schedules()]
        wait = min(upcoming, default=now + self.poll) - now
        return max(0.0, min(wait, self.poll))

    def run(self, stop: threading.Event | None = None, max_ticks: int | None = None) -> None:
        """``start()``, then tick and sleep until ``stop`` is set or ``max_ticks`` ticks."""
        self.start()
        ticks = 0
        while not (stop is not None and stop.is_set()):
            if max_ticks is not None and ticks >= max_ticks:
                return
            self.sleep(self.seconds_to_next())
            self.tick()
            ticks += 1

    def _fire(self, schedule: Schedule, scheduled_for: float, now: float) -> Outcome:
        self.log(f"run: {schedule.id} {schedule.workflow} (scheduled for {utc(scheduled_for)})")
        try:
            outcome = self.launcher(schedule, scheduled_for)
        except Exception as exc:  # a broken launch must not stop the scheduler
            outcome = Outcome(None, "failed", f"{type(exc).__name__}: {exc}")
        if outcome.status == "succeeded":
            self.log(f"done: {schedule.id} run {outcome.run_id} succeeded")
        else:
            self.log(
                f"failed: {schedule.id} run {outcome.run_id or '-'} {outcome.status}: "
                f"{outcome.error or 'no error message'}; the scheduler goes on"
            )
        self._record(
            schedule.id,
            cursor=now,
            last_fired=scheduled_for,
            last_run_id=outcome.run_id,
            last_status=outcome.status,
            last_error=outcome.error,
        )
        return outcome

    def _record(self, schedule_id: str, **changes: object) -> None:
        try:
            self.store.record(schedule_id, **changes)
        except QFlowError as exc:  # the file was broken meanwhile; the loop goes on
            self.log(f"error: could not save {schedule_id}'s progress: {exc}")


def subprocess_launcher(
    project_root: Path, *, python: str = sys.executable, timeout: float | None = None
) -> Launcher:
    """A launcher that runs ``python -m qflow run WORKFLOW OVERRIDES --tag …`` in the project,
    writes its output to ``.qflow/scheduler/logs/`` and finds the run by its tags."""
    log_dir = project_root / ".qflow" / "scheduler" / "logs"

    def launch(schedule: Schedule, scheduled_for: float) -> Outcome:
        stamp = utc(scheduled_for)
        tags = {"schedule": schedule.id, "scheduled_for": stamp}
        command = [python, "-m", "qflow", "run", schedule.workflow, *schedule.overrides]
        for key, value in tags.items():
            command += ["--tag", f"{key}={value}"]
        command += ["--project", str(project_root)]
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / f"{schedule.id}-{stamp.replace(':', '')}.log"
        with open(log_file, "wb") as output:
            try:
                result = subprocess.run(
                    command,
                    cwd=project_root,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                    env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
                )
                code: int | None = result.returncode
            except subprocess.TimeoutExpired:
                code = None
        run_id = _find_run(project_root, tags)
        if code == 0:
            return Outcome(run_id, "succeeded")
        lines = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        reason = "timed out" if code is None else _error_text(lines) or f"exit code {code}"
        return Outcome(run_id, "failed", f"{reason} (log: {log_file})")

    return launch


def _error_text(lines: list[str]) -> str:
    """The CLI's ``Error: …`` message (it may wrap over lines), else the last line."""
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    if not starts:
        return lines[-1] if lines else ""
    message = []
    for line in lines[starts[-1] :]:
        if line.startswith("Hint:"):
            break
        message.append(line.strip())
    return " ".join(message)


def _find_run(project_root: Path, tags: dict[str, str]) -> str | None:
    from qflow.store import MetadataStore
    from qflow.store.location import default_store_url

    store = MetadataStore(default_store_url(project_root))
    try:
        runs = store.list_runs(tags=tags, limit=1)
    except Exception:  # no store yet (the run failed before recording anything)
        return None
    finally:
        store.dispose()
    return runs[0].id if runs else None
