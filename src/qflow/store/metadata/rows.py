"""Conversions between records and table rows, and dialect-aware inserts."""

from __future__ import annotations

import getpass
import importlib
import json
import os
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qflow.store.artifacts import ArtifactRef
from qflow.store.metadata import statements as st


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=json_default)


def json_default(value: object) -> object:
    """numpy scalars and arrays become numbers and lists; anything else its ``str``."""
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    return str(value)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ref_from_row(row: Any) -> ArtifactRef:
    return ArtifactRef(
        row.key,
        row.serializer,
        int(row.size),
        row.type_name,
        bool(row.pickled),
        row.data,
        row.serializer_version or "",
    )


def use_row(ref: ArtifactRef) -> dict[str, Any]:
    """The columns a use of an artifact (step_io, run_artifacts) keeps about how to read it."""
    return {
        "serializer": ref.serializer,
        "serializer_version": ref.serializer_version,
        "type_name": ref.type_name,
        "pickled": ref.pickled,
    }


def artifact_row(ref: ArtifactRef, now: float) -> dict[str, Any]:
    return {**ref.to_dict(), "created_at": now, "data": ref.inline}


def is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that supports ON CONFLICT for the connection's dialect."""
    # Imported here: the PostgreSQL dialect pulls in asyncio and ssl (SQLite never needs them).
    name = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    dialect = importlib.import_module(f"sqlalchemy.dialects.{name}")
    return dialect.insert(table)


def insert_ignore(conn: Connection, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if rows:
        conn.execute(st.insert_ignore(conn.dialect.name, table), rows)


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    if rows:
        stmt = dialect_insert(conn, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
        conn.execute(stmt, rows)
