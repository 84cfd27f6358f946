"""``execute_many``: the driver's executemany on a statement compiled once writes what
SQLAlchemy's ``execute`` would, and fails as it would."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from qflow.store.metadata.rows import execute_many

table = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("data", sa.LargeBinary),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("size", sa.Float),
)
RAISE = (
    table.update()
    .where(
        table.c.id == sa.bindparam("_id"), sa.or_(table.c.state == "new", table.c.state == "open")
    )
    .values(size=sa.bindparam("new_size"), state="raised")
)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    table.create(engine)
    return engine


def rows(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]


def test_execute_many_writes_what_execute_does(engine: sa.Engine) -> None:
    new = [
        {"id": 1, "flag": True, "data": b"\x00\xff", "state": "new", "size": 1.5},
        {"id": 2, "flag": False, "data": None, "state": "done", "size": None},
    ]
    with engine.begin() as conn:
        execute_many(conn, table.insert(), new)
        execute_many(conn, RAISE, [{"_id": 1, "new_size": 2.5}, {"_id": 2, "new_size": 9.0}])
    by_sqlalchemy = [(1, True, b"\x00\xff", "raised", 2.5), (2, False, None, "done", None)]
    assert rows(engine) == by_sqlalchemy
    with engine.begin() as conn:
        execute_many(conn, table.insert(), [])  # nothing to write: no statement


def test_execute_many_fails_as_execute_does(engine: sa.Engine) -> None:
    row = {"id": 1, "flag": True, "data": None, "state": "new", "size": None}
    with pytest.raises(IntegrityError, match="UNIQUE"), engine.begin() as conn:
        execute_many(conn, table.insert(), [row, row])
    assert rows(engine) == []  # the transaction rolled back
    with pytest.raises(TypeError, match="No value for the parameters"), engine.begin() as conn:
        execute_many(conn, RAISE, [{"_id": 1}])
    expanding = table.delete().where(table.c.state.in_(["new", "open"]))
    with pytest.raises(TypeError, match="expanding"), engine.begin() as conn:
        execute_many(conn, expanding, [{}])
