"""The runs filter language, shared by ``qflow runs --filter``, ``qf.Client.runs`` and the API.

```
metrics.accuracy > 0.9 and params.C = 0.5 and status = 'succeeded' and tags.team = 'a'
(status in ('failed', 'crashed') or duration > 60) and not tags.ci = 'yes'
workflow ~ 'regress'    config.model.C <= 1    metrics.loss is null    id = '01JD...'
```

Fields: ``id workflow status user host sweep_id created_at ended_at duration`` and the
prefixed ``metrics.KEY`` (the latest value), ``params.KEY``, ``tags.KEY`` and
``config.DOTTED.PATH``; a key with other characters is quoted with backticks
(``metrics.`val loss```). Operators: ``= == != < <= > >= ~`` (contains), ``in (…)``,
``is [not] null``; ``and``, ``or``, ``not``, parentheses. Values: numbers, quoted strings,
``true``, ``false``. Errors are ``FilterError``s that point at the offending character.

``parse`` gives a small syntax tree; ``to_clause`` turns it into a SQLAlchemy clause over the
``runs`` table (``order_column`` does the same for a sort key). Only SQLAlchemy and the store's
table definitions are imported, so the CLI and the client can use it without the web extra.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qflow.errors import QFlowError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

MAX_LENGTH = 4000
MAX_DEPTH = 32
PLAIN_FIELDS = (
    "id",
    "workflow",
    "status",
    "user",
    "host",
    "sweep_id",
    "created_at",
    "ended_at",
    "duration",
)
NAMESPACES = ("metrics", "params", "tags", "config")
_NUMERIC_FIELDS = ("created_at", "ended_at", "duration")
_OPERATORS = ("==", "!=", "<=", ">=", "=", "<", ">", "~")
_KEYWORDS = ("and", "or", "not", "in", "is", "null", "true", "false")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<field>[A-Za-z_][\w-]*(?:\.(?:`[^`]+`|[\w/:-]+))*)
  | (?P<op>==|!=|<=|>=|=|<|>|~)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


class FilterError(QFlowError, ValueError):
    """A runs filter that cannot be read; the message shows where."""

    @classmethod
    def at(cls, text: str, position: int, problem: str) -> FilterError:
        caret = " " * min(position, 80) + "^"
        shown = text if len(text) <= 120 else text[:117] + "..."
        return cls(
            f"Filter {shown!r} is not valid at character {position + 1}: {problem}.\n"
            f"  {shown}\n  {caret}\n"
            "Hint: write e.g. metrics.accuracy > 0.9 and params.C = 0.5 and status = 'succeeded'."
        )


@dataclass(frozen=True)
class Field:
    """``namespace`` is "" for a plain column, else metrics/params/tags/config."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= ~ in "is null" "is not null"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | BoolOp | Not


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError.at(text, position, f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "field" and value.lower() in _KEYWORDS:
                kind = value.lower()
            tokens.append(_Token(kind, value, position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def parse_field(text: str, *, source: str | None = None, position: int = 0) -> Field:
    """``metrics.accuracy`` → ``Field("metrics", "accuracy")``; checks the name is known."""
    source = text if source is None else source
    head, dot, rest = text.partition(".")
    if not dot:
        if text not in PLAIN_FIELDS:
            from qflow.errors import did_you_mean

            known = [*PLAIN_FIELDS, *(f"{n}.KEY" for n in NAMESPACES)]
            raise FilterError.at(
                source,
                position,
                f"unknown field {text!r} (fields: {', '.join(known)})"
                + did_you_mean(text, [*PLAIN_FIELDS, *NAMESPACES]).replace("\n", " "),
            )
        return Field("", text)
    if head not in NAMESPACES:
        raise FilterError.at(
            source, position, f"unknown prefix {head!r}; use one of {', '.join(NAMESPACES)}"
        )
    if rest.startswith("`") and rest.endswith("`") and rest.count("`") == 2:
        rest = rest[1:-1]
    if not rest or (head != "config" and "`" in rest):
        raise FilterError.at(source, position, f"{head}. needs a key, e.g. {head}.accuracy")
    if head == "config":
        parts = rest.split(".")
        if any(not p or not re.fullmatch(r"[\w-]+", p) for p in parts):
            raise FilterError.at(source, position, f"config path {rest!r} is not a dotted path")
    return Field(head, rest)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self, *kinds: str) -> _Token:
        token = self.token
        if token.kind not in kinds:
            wanted = " or ".join(kinds)
            found = "the end" if token.kind == "end" else repr(token.text)
            raise FilterError.at(self.text, token.position, f"expected {wanted}, found {found}")
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.or_expr()
        self.take("end")
        return node

    def _nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError.at(self.text, self.token.position, "nested too deeply")

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.token.kind == "or":
            self.index += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.token.kind == "and":
            self.index += 1
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_expr(self) -> Node:
        if self.token.kind == "not":
            self.index += 1
            self._nested()
            node: Node = Not(self.not_expr())
            self.depth -= 1
            return node
        if self.token.kind == "punct" and self.token.text == "(":
            self.index += 1
            self._nested()
            inner = self.or_expr()
            self.depth -= 1
            self.take_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Node:
        token = self.take("field")
        field = parse_field(token.text, source=self.text, position=token.position)
        following = self.token
        if following.kind == "is":
            self.index += 1
            negate = self.token.kind == "not"
            if negate:
                self.index += 1
            self.take("null")
            return Compare(field, "is not null" if negate else "is null", ())
        if following.kind == "in" or (following.kind == "not" and self._next_is("in")):
            negate = following.kind == "not"
            self.index += 2 if negate else 1
            self.take_punct("(")
            values = [self.value()]
            while self.token.kind == "punct" and self.token.text == ",":
                self.index += 1
                values.append(self.value())
            self.take_punct(")")
            node: Node = Compare(field, "in", tuple(values))
            return Not(node) if negate else node
        op = self.take("op").text
        value = self.value()
        op = "=" if op == "==" else op
        if op == "~" and not isinstance(value, str):
            raise FilterError.at(self.text, following.position, "~ (contains) needs a string")
        if op in ("<", "<=", ">", ">=") and isinstance(value, bool):
            raise FilterError.at(self.text, following.position, f"{op} needs a number or string")
        self._check_types(field, value, following.position)
        return Compare(field, op, (value,))

    def _next_is(self, kind: str) -> bool:
        return self.index + 1 < len(self.tokens) and self.tokens[self.index + 1].kind == kind

    def take_punct(self, char: str) -> None:
        token = self.token
        if token.kind != "punct" or token.text != char:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise FilterError.at(self.text, token.position, f"expected {char!r}, found {found}")
        self.index += 1

    def value(self) -> Any:
        token = self.token
        if token.kind == "number":
            self.index += 1
            number = float(token.text)
            if number != number or number in (float("inf"), float("-inf")):
                raise FilterError.at(self.text, token.position, "the number is out of range")
            is_int = re.fullmatch(r"[-+]?\d+", token.text) and abs(number) < 2**63
            return int(token.text) if is_int else number
        if token.kind == "string":
            self.index += 1
            body = token.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if token.kind in ("true", "false"):
            self.index += 1
            return token.kind == "true"
        if token.kind == "field":
            # A bare word is a string: status = succeeded.
            self.index += 1
            return token.text
        found = "the end" if token.kind == "end" else repr(token.text)
        raise FilterError.at(self.text, token.position, f"expected a value, found {found}")

    def _check_types(self, field: Field, value: Any, position: int) -> None:
        numeric = field.namespace == "metrics" or field.name in _NUMERIC_FIELDS
        if numeric and field.namespace in ("", "metrics") and isinstance(value, str | bool):
            raise FilterError.at(self.text, position, f"{field} is a number; compare it to one")


def parse(text: str) -> Node | None:
    """The syntax tree of a filter; None for an empty one."""
    if len(text) > MAX_LENGTH:
        raise FilterError(
            f"The filter is {len(text)} characters long; the limit is {MAX_LENGTH}. "
            "Hint: filter on fewer values, or use tags to group runs."
        )
    if not text.strip():
        return None
    return _Parser(text).parse()


# -- SQL ---------------------------------------------------------------------------------------


def latest_metric(key: str) -> ColumnElement[Any]:
    """The run's latest value of metric ``key`` (a correlated scalar subquery)."""
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

    m = t.metrics.alias("m")
    return (
        sa.select(m.c.value)
        .where(m.c.run_id == t.runs.c.id, m.c.key == key)
        .order_by(m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _json_number(column: Any, dialect: str) -> ColumnElement[Any]:
    """A JSON text column as a number where it holds one, else NULL."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import JSONB

    if dialect == "postgresql":
        as_json = sa.cast(column, JSONB)
        return sa.case(
            (
                sa.func.jsonb_typeof(as_json) == "number",
                sa.cast(sa.cast(as_json, sa.Text), sa.Float),
            )
        )
    return sa.case((sa.func.json_type(column).in_(("integer", "real")), sa.cast(column, sa.Float)))


def _json_text(column: Any, dialect: str) -> ColumnElement[Any]:
    """A JSON text column as its string value where it holds a string, else its JSON text."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import JSONB

    if dialect == "postgresql":
        as_json = sa.cast(column, JSONB)
        return sa.case(
            (sa.func.jsonb_typeof(as_json) == "string", _pg_string(as_json)),
            else_=column,
        )
    return sa.case(
        (sa.func.json_type(column) == "text", sa.func.json_extract(column, "$")), else_=column
    )


def _config_value(path: str, dialect: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """(JSON text, number) of ``runs.config`` at a dotted path."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import JSONB

    from qflow.store.metadata import schema as t

    parts = path.split(".")
    if dialect == "postgresql":
        as_json = sa.cast(t.runs.c.config, JSONB)
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
    import sqlalchemy as sa

    return sa.func.jsonb_build_array(node).op("->>")(sa.literal(0))


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _apply(op: str, column: Any, values: tuple[Any, ...]) -> ColumnElement[Any]:
    import sqlalchemy as sa

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
    import sqlalchemy as sa

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
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

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
        if field.name not in _NUMERIC_FIELDS:
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
    import sqlalchemy as sa

    from qflow.store.metadata import schema as t

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
