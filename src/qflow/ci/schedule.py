"""Schedules: ``.qflow/schedules.json`` in the project, written atomically under a lock.

A schedule runs a workflow with overrides when its cron expression fires. Cron expressions
are the five POSIX fields (``0 3 * * *``) or ``@hourly``/``@daily``/``@weekly``/``@monthly``/
``@yearly``, read in UTC (as GitHub Actions reads them). Each schedule keeps a ``cursor``: the
time up to which its fire times have been dealt with, so a scheduler that was down knows
what it missed.

A schedule is checked when it is added: the cron expression must parse and fire at least
once (``0 0 31 2 *`` never does), and, given the project, the workflow must exist and the
overrides must be keys it takes (as ``qflow run`` checks them, without running anything).
The file may also be edited by hand: every entry is checked again when it is read, and one
that is broken is reported (:meth:`ScheduleStore.load`) and kept as it is, while the others
go on running.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.ci.files import write_atomic
from qflow.errors import ConfigError, MissingExtraError, NotFoundError, QFlowError, did_you_mean

if TYPE_CHECKING:
    from qflow.config.project import Project

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
class BrokenSchedule:
    """An entry of the schedule file that cannot run, and why; kept in the file as it is."""

    id: str
    """The entry's id, or ``#N`` (its position) when it has none."""
    workflow: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "workflow": self.workflow, "error": self.error}


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
    try:
        next_fire(text, time.time())
    except Exception:  # croniter: CroniterBadDateError, "failed to find next date"
        raise ConfigError(
            f"Cron expression {expression!r} never fires: no date has this day of the month "
            "in these months (February has no 30th or 31st; April, June, September and "
            "November have no 31st).\nHint: a day those months have, e.g. '0 0 28 2 *'."
        ) from None
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


def shortest_interval(cron: str, after: float, fires: int = 500) -> float:
    """The shortest time between two fire times of ``cron`` among its next ``fires`` ones
    after ``after`` (seconds); ``inf`` if it fires less than twice."""
    iterator = _croniter()(cron, datetime.fromtimestamp(after, UTC))
    times = [float(iterator.get_next(float)) for _ in range(fires)]
    return min((b - a for a, b in itertools.pairwise(times)), default=math.inf)


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


def check_target(project: Project, workflow: str, overrides: Sequence[str]) -> str:
    """The workflow's name, once ``workflow`` is found in ``project`` and ``overrides`` are
    keys it takes (the checks ``qflow run`` makes before a run; the workflow is not traced).
    Raises the ``QFlowError`` ``qflow run`` would (unknown workflow, unknown key, bad value).
    """
    from qflow.config.loader import load_config
    from qflow.runtime.discovery import load_workflow, project_workflows

    known = project_workflows(project)
    found = known.get(workflow)
    if found is None:
        if ":" not in workflow:
            from qflow.errors import WorkflowNotFoundError

            raise WorkflowNotFoundError(
                f"No workflow named {workflow!r} in this project; nothing was scheduled. "
                f"Known workflows: {', '.join(sorted(known)) or '(none)'}."
                f"{did_you_mean(workflow, known)}"
            )
        found = load_workflow(workflow, project)
    config = load_config(found.name, list(overrides), project.conf_dir)
    if found.unbound_parameters(config):
        missing = ", ".join(map(repr, found.unbound_parameters(config)))
        raise ConfigError(
            f"Workflow {found.name!r} needs a value for {missing}, and a scheduled run has "
            f"nowhere to take it from. Hint: qflow schedule add {workflow} "
            f"{found.unbound_parameters(config)[0]}=VALUE --cron …"
        )
    found.config_arguments(config)
    return workflow


def _check_entry(item: object, position: int) -> Schedule:
    """``item`` of the schedule file as a Schedule, or ``ConfigError`` saying what is wrong."""
    if not isinstance(item, dict):
        raise ConfigError(f"entry #{position} is {type(item).__name__}, not a table")
    schedule_id = item.get("id")
    if not isinstance(schedule_id, str) or not _ID.fullmatch(schedule_id):
        raise ConfigError(
            f"id {schedule_id!r} is not letters, digits, '_' and '-' (starting with a letter)"
        )
    workflow = item.get("workflow")
    if not isinstance(workflow, str) or not workflow.strip():
        raise ConfigError(f"workflow {workflow!r} is not a name")
    overrides = item.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides {overrides!r} is not a list of key=value texts")
    for key in ("created_at", "cursor"):
        if not isinstance(item.get(key, 0.0), int | float):
            raise ConfigError(f"{key} {item.get(key)!r} is not a time (epoch seconds)")
    cron = item.get("cron")
    if not isinstance(cron, str):
        raise ConfigError(f"cron {cron!r} is not a cron expression")
    schedule = Schedule.from_json(item)
    return replace(
        schedule,
        cron=normalize_cron(cron),
        overrides=_check_overrides(overrides),
        created_at=float(schedule.created_at),
        cursor=float(schedule.cursor),
    )


def _not_found(schedule_id: str, ids: list[str]) -> ScheduleNotFoundError:
    return ScheduleNotFoundError(
        f"No schedule with id {schedule_id!r}. Schedules: {', '.join(ids) or '(none)'}."
        f"{did_you_mean(schedule_id, ids)}\nHint: qflow schedule list"
    )


_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


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

    def _entries(self) -> list[tuple[object, Schedule | BrokenSchedule]]:
        entries: list[tuple[object, Schedule | BrokenSchedule]] = []
        for position, item in enumerate(self._read()["schedules"], start=1):
            try:
                entries.append((item, _check_entry(item, position)))
            except QFlowError as exc:
                raw = item if isinstance(item, dict) else {}
                name = raw.get("id") if isinstance(raw.get("id"), str) else None
                workflow = raw.get("workflow")
                entries.append(
                    (
                        item,
                        BrokenSchedule(
                            name or f"#{position}",
                            workflow if isinstance(workflow, str) else "?",
                            str(exc).split("\n", 1)[0],
                        ),
                    )
                )
        return entries

    def load(self) -> tuple[list[Schedule], list[BrokenSchedule]]:
        """The schedules that can run, and the entries that cannot (edited by hand)."""
        entries = [entry for _, entry in self._entries()]
        return (
            [e for e in entries if isinstance(e, Schedule)],
            [e for e in entries if isinstance(e, BrokenSchedule)],
        )

    def all(self) -> list[Schedule]:
        """The schedules that can run (broken entries: :meth:`load`)."""
        return self.load()[0]

    def get(self, schedule_id: str) -> Schedule:
        schedules, broken = self.load()
        for schedule in schedules:
            if schedule.id == schedule_id:
                return schedule
        raise _not_found(schedule_id, [s.id for s in schedules] + [b.id for b in broken])

    def update(self, change: Callable[[list[Schedule]], list[Schedule]]) -> list[Schedule]:
        """Apply ``change`` to the current schedules and save the result, under the lock."""
        with self._locked():
            data = self._read()
            entries = self._entries()
            schedules = change([e for _, e in entries if isinstance(e, Schedule)])
            kept = [item for item, e in entries if isinstance(e, BrokenSchedule)]
            data["schedules"] = [s.to_json() for s in schedules] + kept
            write_atomic(self.path, json.dumps(data, indent=2) + "\n")
            return schedules

    def add(
        self,
        workflow: str,
        cron: str,
        overrides: Sequence[str] = (),
        *,
        now: float | None = None,
        project: Project | None = None,
    ) -> Schedule:
        """A new schedule; its first fire time is after ``now``. With ``project``, the
        workflow and the overrides are checked against it first (:func:`check_target`)."""
        moment = time.time() if now is None else now
        cron = normalize_cron(cron)
        overrides = _check_overrides(overrides)
        if project is not None:
            check_target(project, workflow, overrides)
        schedule = Schedule(
            id=f"s{secrets.token_hex(3)}",
            workflow=workflow,
            cron=cron,
            overrides=overrides,
            created_at=moment,
            cursor=moment,
        )
        self.update(lambda schedules: [*schedules, schedule])
        return schedule

    def remove(self, schedule_id: str) -> Schedule | BrokenSchedule:
        """Delete a schedule, or a broken entry by its id (``#N`` for one without an id)."""
        with self._locked():
            data = self._read()
            entries = self._entries()
            for index, (_, entry) in enumerate(entries):
                if entry.id == schedule_id:
                    del data["schedules"][index]
                    write_atomic(self.path, json.dumps(data, indent=2) + "\n")
                    return entry
            raise _not_found(schedule_id, [entry.id for _, entry in entries])

    def record(self, schedule_id: str, **changes: Any) -> None:
        """Save scheduler progress (``cursor``, ``last_*``) of one schedule, if it still exists."""

        def apply(schedules: list[Schedule]) -> list[Schedule]:
            return [replace(s, **changes) if s.id == schedule_id else s for s in schedules]

        self.update(apply)
