"""Schedules: ``.qflow/schedules.json`` in the project, written atomically under a lock.

A schedule runs a workflow with overrides when its cron expression fires. Cron expressions
are the five POSIX fields (``0 3 * * *``) or ``@hourly``/``@daily``/``@weekly``/``@monthly``/
``@yearly``, read in UTC (as GitHub Actions reads them). Each schedule keeps a ``cursor``: the
time up to which its fire times have been dealt with, so a scheduler that was down knows
what it missed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qflow.ci.files import write_atomic
from qflow.errors import ConfigError, MissingExtraError, NotFoundError, did_you_mean

FILE_NAME = "schedules.json"
_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class ScheduleNotFoundError(NotFoundError):
    """No schedule has this id."""


@dataclass(frozen=True)
class Schedule:
    """One scheduled workflow and where its scheduler got to."""

    id: str
    workflow: str
    cron: str
    overrides: tuple[str, ...] = ()
    created_at: float = 0.0
    cursor: float = 0.0
    """Fire times up to here (epoch seconds) have been run or reported."""
    last_fired: float | None = None
    last_run_id: str | None = None
    last_status: str | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["overrides"] = list(self.overrides)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["overrides"] = tuple(values.get("overrides") or ())
        return cls(**values)


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise MissingExtraError(
            "'croniter' is not installed, and schedules need it.\n"
            "Hint: pip install 'qflow-framework' again (croniter is one of its dependencies)."
        ) from None
    return croniter


def normalize_cron(expression: str) -> str:
    """``expression`` as five cron fields, or ``ConfigError`` saying what is wrong."""
    text = " ".join(expression.split())
    text = _ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ConfigError(
            f"Cron expression {expression!r} has {len(fields)} fields; five are needed: "
            "minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (03:00 UTC daily)."
        )
    croniter = _croniter()
    if not croniter.is_valid(text):
        raise ConfigError(
            f"Cron expression {expression!r} is not valid. Example: '0 3 * * *' (03:00 UTC "
            "daily), '*/15 * * * *' (every 15 minutes), '0 6 * * 1-5' (weekdays 06:00)."
        )
    return text


def fire_times(cron: str, after: float, until: float, limit: int = 10_000) -> list[float]:
    """Fire times of ``cron`` in ``(after, until]`` (epoch seconds, UTC), at most ``limit``."""
    iterator = _croniter()(cron, datetime.fromtimestamp(after, UTC))
    times: list[float] = []
    while len(times) < limit:
        moment = float(iterator.get_next(float))
        if moment > until:
            break
        times.append(moment)
    return times


def next_fire(cron: str, after: float) -> float:
    """The first fire time of ``cron`` after ``after``."""
    return float(_croniter()(cron, datetime.fromtimestamp(after, UTC)).get_next(float))


def _check_overrides(overrides: Sequence[str]) -> tuple[str, ...]:
    from qflow.config.loader import parse_override

    for text in overrides:
        parse_override(text)
        if "${{" in text or "\n" in text:
            raise ConfigError(
                f"Override {text!r} cannot be scheduled: no '${{{{' and no line breaks "
                "(the schedule is also exported as a GitHub Actions workflow)."
            )
    return tuple(overrides)


class ScheduleStore:
    """The project's schedules in ``<state_dir>/schedules.json``.

    Every change re-reads the file under an exclusive ``flock`` and writes it atomically, so
    ``qflow schedule add`` and a running ``qflow scheduler`` never lose each other's changes.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._lock_path = state_dir / f"{FILE_NAME}.lock"

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"version": 1, "schedules": []}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{self.path} is not valid JSON ({exc}). Hint: fix or delete it; "
                "qflow schedule add writes it again."
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("schedules"), list):
            raise ConfigError(f"{self.path} has no 'schedules' list. Hint: fix or delete it.")
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def all(self) -> list[Schedule]:
        return [Schedule.from_json(item) for item in self._read()["schedules"]]

    def get(self, schedule_id: str) -> Schedule:
        schedules = self.all()
        for schedule in schedules:
            if schedule.id == schedule_id:
                return schedule
        ids = [s.id for s in schedules]
        raise ScheduleNotFoundError(
            f"No schedule with id {schedule_id!r}. Schedules: {', '.join(ids) or '(none)'}."
            f"{did_you_mean(schedule_id, ids)}\nHint: qflow schedule list"
        )

    def update(self, change: Callable[[list[Schedule]], list[Schedule]]) -> list[Schedule]:
        """Apply ``change`` to the current schedules and save the result, under the lock."""
        with self._locked():
            data = self._read()
            schedules = change([Schedule.from_json(item) for item in data["schedules"]])
            data["schedules"] = [s.to_json() for s in schedules]
            write_atomic(self.path, json.dumps(data, indent=2) + "\n")
            return schedules

    def add(
        self,
        workflow: str,
        cron: str,
        overrides: Sequence[str] = (),
        *,
        now: float | None = None,
    ) -> Schedule:
        """A new schedule; its first fire time is after ``now``."""
        moment = time.time() if now is None else now
        schedule = Schedule(
            id=f"s{secrets.token_hex(3)}",
            workflow=workflow,
            cron=normalize_cron(cron),
            overrides=_check_overrides(overrides),
            created_at=moment,
            cursor=moment,
        )
        self.update(lambda schedules: [*schedules, schedule])
        return schedule

    def remove(self, schedule_id: str) -> Schedule:
        removed = self.get(schedule_id)
        self.update(lambda schedules: [s for s in schedules if s.id != schedule_id])
        return removed

    def record(self, schedule_id: str, **changes: Any) -> None:
        """Save scheduler progress (``cursor``, ``last_*``) of one schedule, if it still exists."""

        def apply(schedules: list[Schedule]) -> list[Schedule]:
            return [replace(s, **changes) if s.id == schedule_id else s for s in schedules]

        self.update(apply)
