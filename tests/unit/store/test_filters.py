"""The runs filter language: parsing, errors that point at the problem, SQL semantics, fuzz."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qflow.store import MetadataStore
from qflow.store.filters import BoolOp, Compare, Field, FilterError, Not, parse
from qflow.store.metadata import filter_sql
from qflow.store.metadata import schema as t


def test_parse_the_issue_example():
    node = parse(
        "metrics.accuracy > 0.9 and params.C = 0.5 and status = 'succeeded' and tags.team = 'a'"
    )
    assert node == BoolOp(
        "and",
        (
            Compare(Field("metrics", "accuracy"), ">", (0.9,)),
            Compare(Field("params", "C"), "=", (0.5,)),
            Compare(Field("", "status"), "=", ("succeeded",)),
            Compare(Field("tags", "team"), "=", ("a",)),
        ),
    )


def test_precedence_parentheses_not_in_null_and_quoted_keys():
    node = parse(
        "not (status in (failed, 'crashed') or duration >= 1e2) and metrics.`val loss` is null"
    )
    assert node == BoolOp(
        "and",
        (
            Not(
                BoolOp(
                    "or",
                    (
                        Compare(Field("", "status"), "in", ("failed", "crashed")),
                        Compare(Field("", "duration"), ">=", (100.0,)),
                    ),
                )
            ),
            Compare(Field("metrics", "val loss"), "is null", ()),
        ),
    )
    assert parse("a = 1 or" if False else "workflow ~ 'reg'") == Compare(
        Field("", "workflow"), "~", ("reg",)
    )
    assert parse("  ") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.accuracy >", r"character 19: expected a value"),
        ("accuracy > 1", r"unknown field 'accuracy'"),
        ("stauts = 'x'", r"Did you mean: status"),
        ("metrics.a = 'x'", r"metrics.a is a number"),
        ("lol.a = 1", r"unknown prefix 'lol'"),
        ("status = 'x' and", r"expected field, found the end"),
        ("(status = 'x'", r"expected '\)'"),
        ("status = 'x')", r"expected end"),
        ("status = 'unterminated", r"unexpected character"),
        ("status in ()", r"expected a value"),
        ("duration > 1e999", r"out of range"),
        ("status ~ 3", r"needs a string"),
        ("x" * 5000, r"limit is 4000"),
        ("(" * 40 + "status = 'x'" + ")" * 40, r"nested too deeply"),
    ],
)
def test_errors_point_at_the_problem(text: str, message: str):
    with pytest.raises(FilterError, match=message):
        parse(text)


@pytest.fixture
def store(metadata_store: MetadataStore):
    """Four runs, on SQLite and on PostgreSQL."""
    metadata = metadata_store
    runs = {}
    for name, status, acc, c, team, model in [
        ("a", "succeeded", 0.95, 0.5, "x", {"C": 0.5, "kind": "lr"}),
        ("b", "succeeded", 0.85, 1.0, "y", {"C": 1.0, "kind": "svm"}),
        ("c", "failed", None, 0.5, None, {"C": 0.5, "kind": "lr"}),
        ("d", "succeeded", 0.99, "big", "x", {"C": 2, "kind": "tree"}),
    ]:
        run = metadata.create_run(workflow=f"wf_{name}", config={"model": model})
        runs[name] = run.id
        metadata.log_params(run.id, {"C": c})
        if acc is not None:
            metadata.log_metrics([(run.id, None, "accuracy", 0.1, 0, 1.0)])
            metadata.log_metrics([(run.id, None, "accuracy", acc, 1, 2.0)])
        if team:
            metadata.set_tags(run.id, {"team": team})
        metadata.finish_run(run.id, status)
    return metadata, runs


def _match(store, text: str) -> set[str]:
    metadata, runs = store
    names = {v: k for k, v in runs.items()}
    query = sa.select(t.runs.c.id)
    clause = filter_sql.compile_filter(text, metadata.engine.dialect.name)
    if clause is not None:
        query = query.where(clause)
    with metadata.engine.connect() as conn:
        return {names[i] for i in conn.execute(query).scalars()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.accuracy > 0.9", {"a", "d"}),  # the latest value, not any value
        ("metrics.accuracy < 0.5", set()),
        ("metrics.accuracy is null", {"c"}),
        ("params.C = 0.5", {"a", "c"}),
        ("params.C = 'big'", {"d"}),
        ("params.C >= 1", {"b"}),
        ("params.C != 0.5", {"b", "d"}),
        ("tags.team = 'x'", {"a", "d"}),
        ("tags.team != 'x'", {"b", "c"}),
        ("tags.team is null", {"c"}),
        ("status = failed", {"c"}),
        ("status in (failed, crashed) or metrics.accuracy > 0.98", {"c", "d"}),
        ("not status = succeeded", {"c"}),
        ("workflow ~ '_b'", {"b"}),
        ("workflow ~ '%'", set()),
        ("config.model.kind = lr", {"a", "c"}),
        ("config.model.C > 0.7", {"b", "d"}),
        ("config.model.missing is null", {"a", "b", "c", "d"}),
        ("duration >= 0 and created_at > 0", {"a", "b", "c", "d"}),
    ],
)
def test_filters_select_the_right_runs(store, text: str, expected: set[str]):
    assert _match(store, text) == expected


@pytest.mark.parametrize(
    ("sort", "first"), [("metrics.accuracy", "d"), ("params.C", "b"), ("tags.team", "b")]
)
def test_order_columns(store, sort: str, first: str):
    """Descending, missing values last; numbers before text."""
    metadata, runs = store
    names = {v: k for k, v in runs.items()}
    columns = filter_sql.order_columns(sort, metadata.engine.dialect.name)
    query = sa.select(t.runs.c.id).order_by(*(c.desc().nulls_last() for c in columns))
    with metadata.engine.connect() as conn:
        assert names[conn.execute(query).scalars().first()] == first


TOKENS = st.sampled_from(
    [
        "metrics.acc",
        "params.C",
        "tags.t",
        "config.a.b",
        "status",
        "duration",
        "id",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "(",
        ")",
        ",",
        "=",
        "!=",
        "<",
        ">=",
        "~",
        "'x'",
        '"y"',
        "1",
        "-2.5e3",
        "true",
        "`k`",
        "metrics.`a b`",
        "\x00",
        "'",
        "\\",
        "..",
        "%",
        "é",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.lists(TOKENS, max_size=12).map(" ".join), st.text(max_size=60)))
def test_fuzz_parser_only_raises_filter_errors(text: str):
    try:
        node = parse(text)
    except FilterError:
        return
    if node is not None:
        filter_sql.to_clause(node, "sqlite")
        filter_sql.to_clause(node, "postgresql")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.lists(TOKENS, min_size=3, max_size=9).map(" ".join))
def test_fuzz_valid_filters_run_on_sqlite(tmp_path_factory, text: str):
    try:
        clause = filter_sql.compile_filter(text, "sqlite")
    except FilterError:
        return
    metadata = _FUZZ_STORE.setdefault(
        "s", MetadataStore(f"sqlite:///{tmp_path_factory.mktemp('fz') / 'q.db'}")
    )
    query = sa.select(t.runs.c.id)
    if clause is not None:
        query = query.where(clause)
    with metadata.engine.connect() as conn:
        conn.execute(query).all()


_FUZZ_STORE: dict[str, MetadataStore] = {}
