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
