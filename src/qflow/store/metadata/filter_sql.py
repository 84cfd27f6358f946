"""The runs filter language compiled to SQL: a parsed filter (``qflow.store.filters``) as a
SQLAlchemy clause over the ``runs`` table, and sort keys as ORDER BY columns."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from qflow.store.filters import NUMERIC_FIELDS, BoolOp, Compare, Node, Not, parse, parse_field
from qflow.store.metadata import schema as t


def latest_metric(key: str) -> ColumnElement[Any]:
    """The run's latest value of metric ``key`` (a correlated scalar subquery)."""

    m = t.metrics.alias("m")
    return (
        sa.select(m.c.value)
        .where(m.c.run_id == t.runs.c.id, m.c.key == key)
        .order_by(m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _jsonb(column: Any) -> ColumnElement[Any]:
    """``column`` as PostgreSQL JSONB (its dialect, which imports asyncio and ssl, is imported
    only for PostgreSQL)."""
    from sqlalchemy.dialects.postgresql import JSONB

    return sa.cast(column, JSONB)


def _json_number(column: Any, dialect: str) -> ColumnElement[Any]:
    """A JSON text column as a number where it holds one, else NULL."""

    if dialect == "postgresql":
        as_json = _jsonb(column)
        return sa.case(
            (
                sa.func.jsonb_typeof(as_json) == "number",
                sa.cast(sa.cast(as_json, sa.Text), sa.Float),
            )
        )
    return sa.case((sa.func.json_type(column).in_(("integer", "real")), sa.cast(column, sa.Float)))


def _json_text(column: Any, dialect: str) -> ColumnElement[Any]:
    """A JSON text column as its string value where it holds a string, else its JSON text."""

    if dialect == "postgresql":
        as_json = _jsonb(column)
        return sa.case(
            (sa.func.jsonb_typeof(as_json) == "string", _pg_string(as_json)),
            else_=column,
        )
    return sa.case(
        (sa.func.json_type(column) == "text", sa.func.json_extract(column, "$")), else_=column
    )


def _config_value(path: str, dialect: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """(JSON text, number) of ``runs.config`` at a dotted path."""

    parts = path.split(".")
    if dialect == "postgresql":
        as_json = _jsonb(t.runs.c.config)
        node = sa.func.jsonb_extract_path(as_json, *parts)
        text = sa.case(
            (sa.func.jsonb_typeof(node) == "string", _pg_string(node)),
            else_=sa.cast(node, sa.Text),
        )
        number = sa.case(
            (sa.func.jsonb_typeof(node) == "number", sa.cast(sa.cast(node, sa.Text), sa.Float))
        )
        return text, number
    json_path = "$" + "".join(f'."{p}"' for p in parts)
    extracted = sa.func.json_extract(t.runs.c.config, json_path)
    kind = sa.func.json_type(t.runs.c.config, json_path)
    number = sa.case((kind.in_(("integer", "real")), sa.cast(extracted, sa.Float)))
    text = sa.case(
        (kind == "true", "true"), (kind == "false", "false"), else_=sa.cast(extracted, sa.Text)
    )
    return text, number


def _pg_string(node: Any) -> ColumnElement[Any]:
    """A jsonb string scalar as text (``jsonb_build_array(x) ->> 0``)."""

    return sa.func.jsonb_build_array(node).op("->>")(sa.literal(0))


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _apply(op: str, column: Any, values: tuple[Any, ...]) -> ColumnElement[Any]:

    if op == "is null":
        result: ColumnElement[Any] = column.is_(None)
    elif op == "is not null":
        result = column.is_not(None)
    elif op == "in":
        result = column.in_(list(values))
    elif op == "~":
        result = column.like(_like(str(values[0])), escape="\\")
    else:
        result = {
            "=": column.__eq__,
            "!=": column.__ne__,
            "<": column.__lt__,
            "<=": column.__le__,
            ">": column.__gt__,
            ">=": column.__ge__,
        }[op](values[0])
    return sa.and_(result)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(op: str, text_col: Any, number_col: Any, values: tuple[Any, ...]) -> ColumnElement[Any]:
    """Compare as numbers when every value is a number, else as text (JSON text for bools)."""

    if op in ("is null", "is not null"):
        return _apply(op, text_col, values)
    if values and all(_is_number(v) for v in values):
        return _apply(op, number_col, values)
    texts = tuple(json.dumps(v) if isinstance(v, bool) else str(v) for v in values)
    clause = _apply(op, text_col, texts)
    if op == "!=":
        return sa.or_(clause, text_col.is_(None))
    return clause


_COST = {"": 0, "tags": 1, "params": 2, "config": 2, "metrics": 3}


def _cost(node: Node) -> int:
    """How expensive a test is per run: columns < tags < params/config < latest metrics."""
    if isinstance(node, Compare):
        return _COST[node.field.namespace]
    if isinstance(node, Not):
        return _cost(node.item)
    return max(_cost(item) for item in node.items)


def to_clause(node: Node, dialect: str = "sqlite") -> ColumnElement[bool]:
    """A WHERE clause over ``runs`` for ``node`` (``dialect``: sqlite or postgresql)."""

    if isinstance(node, BoolOp):
        # Cheap tests first: the database stops at the first false one of an AND.
        items = sorted(node.items, key=_cost) if node.op == "and" else node.items
        parts = [to_clause(item, dialect) for item in items]
        return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
    if isinstance(node, Not):
        return sa.not_(to_clause(node.item, dialect))
    field, op, values = node.field, node.op, node.values
    if field.namespace == "":
        column = (
            (t.runs.c.ended_at - t.runs.c.created_at)
            if field.name == "duration"
            else t.runs.c[field.name]
        )
        if field.name not in NUMERIC_FIELDS:
            values = tuple(json.dumps(v) if isinstance(v, bool) else str(v) for v in values)
        return _apply(op, column, values)
    if field.namespace == "metrics":
        return _apply(op, latest_metric(field.name), values)
    if field.namespace == "config":
        text, number = _config_value(field.name, dialect)
        return _typed(op, text, number, values)
    if field.namespace == "tags":
        g = t.tags.alias("g")
        if op == "is null":
            return ~sa.exists().where(g.c.run_id == t.runs.c.id, g.c.key == field.name)
        texts = tuple(json.dumps(v) if isinstance(v, bool) else str(v) for v in values)
        match = _apply(op, g.c.value, texts)
        exists = sa.exists().where(g.c.run_id == t.runs.c.id, g.c.key == field.name, match)
        if op == "!=":
            return ~sa.exists().where(
                g.c.run_id == t.runs.c.id, g.c.key == field.name, g.c.value.in_(texts)
            )
        return exists
    p = t.params.alias("p")
    if op == "is null":
        return ~sa.exists().where(p.c.run_id == t.runs.c.id, p.c.key == field.name)
    if op == "!=":
        equal = _typed(
            "=", _json_text(p.c.value, dialect), _json_number(p.c.value, dialect), values
        )
        return ~sa.exists().where(p.c.run_id == t.runs.c.id, p.c.key == field.name, equal)
    match = _typed(op, _json_text(p.c.value, dialect), _json_number(p.c.value, dialect), values)
    return sa.exists().where(p.c.run_id == t.runs.c.id, p.c.key == field.name, match)


def order_columns(sort: str, dialect: str = "sqlite") -> tuple[ColumnElement[Any], ...]:
    """What a runs table is sorted by: a plain field, ``metrics.K``, ``params.K``, ``tags.K``
    or ``config.PATH``. Params and config sort numbers first, then text (two columns)."""

    field = parse_field(sort)
    if field.namespace == "":
        if field.name == "duration":
            return (t.runs.c.ended_at - t.runs.c.created_at,)
        return (t.runs.c[field.name],)
    if field.namespace == "metrics":
        return (latest_metric(field.name),)
    if field.namespace == "config":
        text, number = _config_value(field.name, dialect)
        return number, text
    if field.namespace == "tags":
        g = t.tags.alias("g")
        query = sa.select(g.c.value).where(g.c.run_id == t.runs.c.id, g.c.key == field.name)
        return (query.limit(1).scalar_subquery(),)
    p = t.params.alias("p")
    value = (
        sa.select(p.c.value)
        .where(p.c.run_id == t.runs.c.id, p.c.key == field.name)
        .order_by(p.c.step_run_id.is_not(None), p.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return _json_number(value, dialect), _json_text(value, dialect)


def compile_filter(text: str | None, dialect: str = "sqlite") -> ColumnElement[bool] | None:
    """``parse`` then ``to_clause``; None for no filter."""
    node = parse(text or "")
    return None if node is None else to_clause(node, dialect)
