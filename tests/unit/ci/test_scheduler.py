"""The scheduler loop with a fake clock: no real sleeping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from qflow.ci.schedule import Schedule, ScheduleStore
from qflow.ci.scheduler import Outcome, ScheduleLoop


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Recorder:
    """A launcher that records calls and fails for the workflows it is told to."""

    def __init__(self, clock: FakeClock, failing: tuple[str, ...] = (), crash: bool = False):
        self.clock = clock
        self.failing = failing
        self.crash = crash
        self.calls: list[tuple[str, float, float]] = []

    def __call__(self, schedule: Schedule, scheduled_for: float) -> Outcome:
        self.calls.append((schedule.workflow, scheduled_for, self.clock.now))
        self.clock.now += 30  # a run takes 30 s
        if schedule.workflow in self.failing:
            if self.crash:
                raise RuntimeError("the launcher itself broke")
            return Outcome(f"run-{len(self.calls)}", "failed", "step fit raised ValueError")
        return Outcome(f"run-{len(self.calls)}", "succeeded")


def _loop(tmp_path: Path, clock: FakeClock, launcher: Recorder, **options: object) -> ScheduleLoop:
    messages: list[str] = []
    loop = ScheduleLoop(
        ScheduleStore(tmp_path),
        launcher,
        clock=clock,
        sleep=clock.sleep,
        log=messages.append,
        **options,  # type: ignore[arg-type]
    )
    loop.messages = messages  # type: ignore[attr-defined]
    return loop


def test_loop_runs_schedules_when_they_fire(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-01-01T02:58:00"))
    store = ScheduleStore(tmp_path)
    store.add("daily", "0 3 * * *", ["x=1"], now=clock.now)
    store.add("quarter", "*/15 * * * *", now=clock.now)
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher, poll=3600)
    loop.run(max_ticks=3)
    assert [
        (w, datetime.fromtimestamp(t, UTC).strftime("%H:%M")) for w, t, _ in launcher.calls
    ] == [
        ("daily", "03:00"),
        ("quarter", "03:00"),
        ("quarter", "03:15"),
        ("quarter", "03:30"),
    ]
    assert clock.slept[0] == 120  # slept until 03:00 exactly, not in polling steps
    daily = store.all()[0]
    assert daily.last_status == "succeeded" and daily.last_run_id == "run-1"
    assert daily.last_fired == at("2025-01-01T03:00:00")


def test_a_failing_run_does_not_stop_the_loop(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-01-01T00:00:30"))
    store = ScheduleStore(tmp_path)
    store.add("broken", "* * * * *", now=clock.now)
    store.add("fine", "* * * * *", now=clock.now)
    launcher = Recorder(clock, failing=("broken",))
    loop = _loop(tmp_path, clock, launcher, poll=60)
    loop.run(max_ticks=3)
    assert [w for w, _, _ in launcher.calls].count("fine") == 3
    assert [w for w, _, _ in launcher.calls].count("broken") == 3
    broken, fine = store.all()
    assert broken.last_status == "failed" and "ValueError" in (broken.last_error or "")
    assert fine.last_status == "succeeded"
    failures = [m for m in loop.messages if m.startswith("failed:")]  # type: ignore[attr-defined]
    assert len(failures) == 3 and "the scheduler goes on" in failures[0]


def test_a_crashing_launcher_does_not_stop_the_loop(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-01-01T00:00:30"))
    store = ScheduleStore(tmp_path)
    store.add("broken", "* * * * *", now=clock.now)
    launcher = Recorder(clock, failing=("broken",), crash=True)
    loop = _loop(tmp_path, clock, launcher, poll=60)
    loop.run(max_ticks=2)
    assert len(launcher.calls) == 2
    assert store.all()[0].last_error == "RuntimeError: the launcher itself broke"


def test_start_reports_what_was_missed_and_runs_it_once(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    store.add("daily", "0 3 * * *", now=at("2025-01-01T00:00:00"))
    store.add("weekly", "0 0 * * 0", now=at("2025-01-01T00:00:00"))  # Sunday 2025-01-05
    clock = FakeClock(at("2025-01-04T12:00:00"))  # down 3.5 days: 4 daily runs missed
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher)
    outcomes = loop.start()
    assert len(outcomes) == 1
    assert [(w, t) for w, t, _ in launcher.calls] == [("daily", at("2025-01-04T03:00:00"))]
    missed = [m for m in loop.messages if m.startswith("missed:")]  # type: ignore[attr-defined]
    assert len(missed) == 1
    assert "missed 4 runs" in missed[0]
    assert "2025-01-01T03:00:00Z .. 2025-01-04T03:00:00Z" in missed[0]
    assert "running it once now" in missed[0]
    assert loop.tick() == []  # nothing more is due: the cursor moved on


def test_start_can_skip_what_was_missed(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    store.add("daily", "0 3 * * *", now=at("2025-01-01T00:00:00"))
    clock = FakeClock(at("2025-01-02T12:00:00"))
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher, catch_up="skip")
    assert loop.start() == []
    assert launcher.calls == []
    assert any("not running them" in m for m in loop.messages)  # type: ignore[attr-defined]
    assert store.all()[0].cursor == at("2025-01-02T12:00:00")
    assert loop.tick() == []


def test_fire_times_passed_during_a_long_run_are_run_once(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    store.add("often", "* * * * *", now=at("2025-01-01T00:00:00"))
    clock = FakeClock(at("2025-01-01T00:00:00"))
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher)
    loop.start()
    clock.now = at("2025-01-01T00:05:10")  # a 5-minute gap (another long run, a suspend)
    assert len(loop.tick()) == 1
    assert any(m.startswith("late: ") and "fired 5 times" in m for m in loop.messages)  # type: ignore[attr-defined]


def test_schedules_added_while_running_are_picked_up(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    clock = FakeClock(at("2025-01-01T00:00:00"))
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher, poll=60)
    loop.start()
    assert loop.seconds_to_next() == 60  # nothing scheduled: poll
    store.add("new", "*/2 * * * *", now=clock.now)
    assert loop.seconds_to_next() == 60
    clock.sleep(loop.seconds_to_next())
    clock.sleep(loop.seconds_to_next())
    assert len(loop.tick()) == 1
    assert [w for w, _, _ in launcher.calls] == ["new"]


def test_a_broken_entry_is_skipped_and_the_others_run(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-01-01T00:00:30"))
    store = ScheduleStore(tmp_path)
    store.add("fine", "* * * * *", now=clock.now)
    data = json.loads(store.path.read_text())
    data["schedules"].insert(0, {"id": "sfeb", "workflow": "train", "cron": "0 0 31 2 *"})
    store.path.write_text(json.dumps(data))
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher, poll=60)
    loop.run(max_ticks=3)
    assert [w for w, _, _ in launcher.calls] == ["fine"] * 3
    messages: list[str] = loop.messages  # type: ignore[attr-defined]
    skipped = [m for m in messages if m.startswith("skipped:")]
    assert skipped == [
        "skipped: sfeb (train) is broken: Cron expression '0 0 31 2 *' never fires: no date "
        "has this day of the month in these months (February has no 30th or 31st; April, "
        "June, September and November have no 31st). Hint: fix it in "
        f"{store.path}, or qflow schedule remove sfeb"
    ]  # once, not at every tick
    assert messages[1] == "scheduler: 1 schedule(s), catch-up once"
    assert json.loads(store.path.read_text())["schedules"][1]["id"] == "sfeb"  # kept


def test_an_unreadable_file_stops_no_loop(tmp_path: Path) -> None:
    clock = FakeClock(at("2025-01-01T00:00:30"))
    store = ScheduleStore(tmp_path)
    store.add("fine", "* * * * *", now=clock.now)
    good = store.path.read_text()
    launcher = Recorder(clock)
    loop = _loop(tmp_path, clock, launcher, poll=60)
    loop.start()
    store.path.write_text("{half written")
    assert loop.tick() == [] and loop.seconds_to_next() == 60
    assert loop.tick() == []
    messages: list[str] = loop.messages  # type: ignore[attr-defined]
    errors = [m for m in messages if m.startswith("error:")]
    assert len(errors) == 1 and "is not valid JSON" in errors[0]
    store.path.write_text(good)
    clock.now += 60
    assert [o.status for o in loop.tick()] == ["succeeded"]
