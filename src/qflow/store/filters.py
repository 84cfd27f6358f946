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

``parse`` gives a small syntax tree and checks it; ``qflow.store.metadata.filter_sql`` turns it
into SQL. This module imports nothing but the standard library, so the CLI, the client and the
HTTP store can check a filter without loading a database driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from qflow.errors import QFlowError

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
NUMERIC_FIELDS = ("created_at", "ended_at", "duration")
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
        numeric = field.namespace == "metrics" or field.name in NUMERIC_FIELDS
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
