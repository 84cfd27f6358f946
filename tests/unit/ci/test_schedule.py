from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qflow.ci.schedule import (
    ScheduleNotFoundError,
    ScheduleStore,
    fire_times,
    next_fire,
    normalize_cron,
    shortest_interval,
)
from qflow.errors import ConfigError


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_add_list_remove(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path / ".qflow")
    first = store.add("train", "0 3 * * *", ["model.C=0.5"], now=at("2025-01-01T00:00:00"))
    second = store.add("evaluate", "@hourly", now=at("2025-01-01T00:00:00"))
    assert [s.id for s in store.all()] == [first.id, second.id]
    assert second.cron == "0 * * * *"
    assert store.get(first.id).overrides == ("model.C=0.5",)
    data = json.loads((tmp_path / ".qflow" / "schedules.json").read_text())
    assert data["schedules"][0]["workflow"] == "train"
    assert store.remove(first.id).workflow == "train"
    assert [s.id for s in store.all()] == [second.id]
    with pytest.raises(ScheduleNotFoundError, match="No schedule with id"):
        store.remove(first.id)
    assert not list((tmp_path / ".qflow").glob(".schedules.json.*"))  # no temp files left


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * *", "has 4 fields"),
        ("0 0 3 * * *", "has 6 fields"),
        ("61 3 * * *", "not valid"),
        ("every day", "has 2 fields"),
    ],
    ids=["four", "six", "minute", "words"],
)
def test_bad_cron_is_refused(tmp_path: Path, cron: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScheduleStore(tmp_path).add("train", cron)
    assert not (tmp_path / "schedules.json").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [("model.C", "malformed"), ("x=${{ secrets.T }}", "cannot be scheduled")],
    ids=["malformed", "expression"],
)
def test_bad_override_is_refused(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScheduleStore(tmp_path).add("train", "0 3 * * *", [override])


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "0 0 31 11 *"])
def test_a_cron_that_never_fires_is_refused(tmp_path: Path, cron: str) -> None:
    with pytest.raises(ConfigError, match=r"never fires: no date has this day of the month"):
        ScheduleStore(tmp_path).add("train", cron)
    assert not (tmp_path / "schedules.json").exists()


def test_a_rare_cron_is_accepted(tmp_path: Path) -> None:
    schedule = ScheduleStore(tmp_path).add("train", "0 0 29 2 *", now=at("2025-03-01T00:00:00"))
    assert next_fire(schedule.cron, schedule.cursor) == at("2028-02-29T00:00:00")


def test_broken_entries_are_reported_kept_and_removable(tmp_path: Path) -> None:
    """A hand-edited file: the good entry runs, each broken one says why and stays as it is
    when the scheduler saves progress, and `remove` deletes one by its id (or #N)."""
    good = {"id": "sgood", "workflow": "train", "cron": "0 3 * * *", "cursor": 0}
    entries = [
        {"id": "sfeb", "workflow": "train", "cron": "0 0 31 2 *"},
        good,
        {"id": "snowf", "cron": "0 3 * * *"},
        "not a table",
        {"id": "sover", "workflow": "train", "cron": "@daily", "overrides": "lr=1"},
        {"id": "bad id!", "workflow": "train", "cron": "@daily"},
        {"id": "scron", "workflow": "train", "cron": "61 * * * *"},
    ]
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps({"version": 1, "schedules": entries}))
    store = ScheduleStore(tmp_path)
    schedules, broken = store.load()
    assert [s.id for s in schedules] == ["sgood"]
    assert [(b.id, b.workflow) for b in broken] == [
        ("sfeb", "train"), ("snowf", "?"), ("#4", "?"), ("sover", "train"),
        ("bad id!", "train"), ("scron", "train"),
    ]  # fmt: skip
    errors = [b.error for b in broken]
    assert errors[0].startswith("Cron expression '0 0 31 2 *' never fires")
    assert errors[1] == "workflow None is not a name"
    assert errors[2] == "entry #4 is str, not a table"
    assert errors[3] == "overrides 'lr=1' is not a list of key=value texts"
    assert errors[4].startswith("id 'bad id!' is not letters")
    assert errors[5].startswith("Cron expression '61 * * * *' is not valid")
    assert store.all() == schedules
    store.record("sgood", cursor=5.0, last_status="succeeded")
    saved = json.loads(path.read_text())["schedules"]
    assert saved[0] == {**good, **saved[0]} and saved[0]["cursor"] == 5.0
    assert saved[1:] == [e for e in entries if e is not good]  # broken entries kept as they were
    assert store.remove("sfeb").id == "sfeb"
    assert store.remove("#3").id == "#3"  # "not a table" is third now
    assert [b.id for b in store.load()[1]] == ["snowf", "sover", "bad id!", "scron"]
    with pytest.raises(ScheduleNotFoundError, match="Schedules: sgood, snowf, sover"):
        store.get("sfeb")


def test_shortest_interval() -> None:
    start = at("2025-03-01T00:00:00")
    assert shortest_interval("*/2 * * * *", start) == 120
    assert shortest_interval("0,58 * * * *", start) == 120
    assert shortest_interval("0 3 * * *", start) == 86400


def test_broken_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "schedules.json").write_text("{nope")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        ScheduleStore(tmp_path).all()


def test_fire_times_are_utc() -> None:
    assert normalize_cron(" 0  3 * * * ") == "0 3 * * *"
    times = fire_times("0 3 * * *", at("2025-01-01T00:00:00"), at("2025-01-03T03:00:00"))
    assert times == [
        at("2025-01-01T03:00:00"),
        at("2025-01-02T03:00:00"),
        at("2025-01-03T03:00:00"),
    ]
    assert next_fire("0 3 * * *", at("2025-01-01T03:00:00")) == at("2025-01-02T03:00:00")
