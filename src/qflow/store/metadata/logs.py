"""Queries on logged metrics, params, tags and artifacts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from qflow.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
)
from qflow.store.artifacts import ArtifactRef
from qflow.store.bits import bits_float
from qflow.store.bits import floats_bits as float_bits
from qflow.store.metadata import schema as t
from qflow.store.metadata import statements as st
from qflow.store.metadata.database import Database, Retry, masked, retryable, translated
from qflow.store.metadata.records import LoggedArtifact, Metric
from qflow.store.metadata.rows import (
    artifact_row,
    dumps,
    insert_ignore,
    is_number,
    ref_from_row,
    upsert,
    use_row,
)

METRIC_COLUMNS = ("run_id", "step_run_id", "key", "value", "bits", "step", "timestamp")
METRIC_RETRY_SECONDS = 30.0
"""How long a metric batch is retried through transient database failures."""


class LogQueries(Database):
    """What steps log: metrics, params, tags and files; artifact rows."""

    @translated(retry=Retry.NEVER)  # retries by itself, checking for a committed batch
    def log_metrics(
        self,
        rows: Sequence[tuple[str, int | None, str, float, int | None, float]],
        *,
        retry: bool = False,
    ) -> None:
        """Append metric rows ``(run_id, step_run_id, key, value, step, timestamp)`` in bulk.

        A transient failure (a connection lost or refused, the database busy) is retried with
        backoff for up to ``METRIC_RETRY_SECONDS``. Each batch is one transaction, so before a
        retry the batch's last row is looked up: if the failed attempt committed after all
        (only its answer was lost), nothing is written again. ``retry=True`` does that check
        before the first attempt too (a client re-sending a batch, see the remote store).
        """
        if not rows:
            return
        try:
            values = [float(row[3]) for row in rows]
        except (TypeError, ValueError) as exc:
            bad = next(r for r in rows if not is_number(r[3]))
            raise InvalidValueError(
                f"Metric {bad[2]!r} has the value {bad[3]!r}, which is not a number. "
                "Hint: log a float or int, for example float(x)."
            ) from exc
        params = [
            (row[0], row[1], row[2], None if v != v else v, bits, row[4], row[5])
            for row, v, bits in zip(rows, values, float_bits(values), strict=True)
        ]
        deadline = time.monotonic() + METRIC_RETRY_SECONDS
        delay = 0.05
        check = retry
        while True:
            try:
                if check and self._metric_row_exists(params[-1]):
                    return
                self._insert_metrics(params)
                return
            except sa.exc.DBAPIError as exc:
                # a lost connection or a busy database, never a full disk or a bad value
                if not retryable(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            check = True

    def _metric_row_exists(self, row: tuple[object, ...]) -> bool:
        """Whether this exact metric row (same run, step run, key, bits, step and timestamp)
        is stored: the test of a batch that may have committed before its answer was lost."""
        c = t.metrics.c
        run_id, step_run_id, key, _, bits, step, timestamp = row
        query = (
            sa.select(sa.literal(1))
            .where(
                c.run_id == run_id,
                c.key == key,
                c.bits == bits,
                c.timestamp == timestamp,
                c.step.is_(None) if step is None else c.step == step,
                c.step_run_id.is_(None) if step_run_id is None else c.step_run_id == step_run_id,
            )
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def _insert_metrics(self, params: Sequence[tuple[object, ...]]) -> None:
        with self.engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            columns = ", ".join(quote(c) for c in METRIC_COLUMNS)
            if conn.dialect.name == "postgresql":
                # COPY is about 5x faster than a batched INSERT on PostgreSQL.
                with (
                    conn.connection.driver_connection.cursor() as cursor,  # type: ignore[union-attr]
                    cursor.copy(f"COPY metrics ({columns}) FROM STDIN") as copy,
                ):
                    for row in params:
                        copy.write_row(row)
                return
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            marks = ", ".join([mark] * len(METRIC_COLUMNS))
            conn.exec_driver_sql(f"INSERT INTO metrics ({columns}) VALUES ({marks})", params)

    @translated
    def metrics(
        self, run_id: str, key: str | None = None, step_run_id: int | None = None
    ) -> list[Metric]:
        """A run's metric values in logging order, exact to the bit."""
        c = t.metrics.c
        query = sa.select(c.key, c.bits, c.step, c.timestamp, c.step_run_id).where(
            c.run_id == run_id
        )
        if key is not None:
            query = query.where(c.key == key)
        if step_run_id is not None:
            query = query.where(c.step_run_id == step_run_id)
        with self.engine.connect() as conn:
            return [
                Metric(k, bits_float(bits), step, ts, sr)
                for k, bits, step, ts, sr in conn.execute(query.order_by(c.id))
            ]

    @translated
    def log_params(
        self, run_id: str, params: dict[str, object], step_run_id: int | None = None
    ) -> None:
        """Record params once; the same value again is fine, a different one is an error."""
        encoded = {key: dumps(value) for key, value in params.items()}
        scope = (
            t.params.c.step_run_id.is_(None)
            if step_run_id is None
            else t.params.c.step_run_id == step_run_id
        )
        rows = [
            {"run_id": run_id, "step_run_id": step_run_id, "key": k, "value": v}
            for k, v in encoded.items()
        ]
        with self.engine.begin() as conn:
            # Insert first, skipping keys already there, then compare: a read-then-insert let
            # two processes logging the same param both insert, and one failed on the unique
            # index. A different value rolls the whole call back.
            insert_ignore(conn, t.params, rows)
            stored = conn.execute(
                sa.select(t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id == run_id, scope, t.params.c.key.in_(list(encoded))
                )
            ).all()
            for key, old in stored:
                if old != encoded[key]:
                    raise InvalidValueError(
                        f"Param {key!r} is already {old} in run {run_id!r}; it cannot change "
                        f"to {encoded[key]}. Hint: log it under another name, or start a new run."
                    )

    @translated
    def param_rows(self, run_id: str) -> list[tuple[int | None, str, Any]]:
        """Every param logged in a run, in logging order: ``(step_run_id, key, value)``."""
        c = t.params.c
        query = sa.select(c.step_run_id, c.key, c.value).where(c.run_id == run_id).order_by(c.id)
        with self.engine.connect() as conn:
            return [(s, k, json.loads(v)) for s, k, v in conn.execute(query)]

    @translated
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
        with self.engine.begin() as conn:
            upsert(conn, t.tags, rows, ["run_id", "key"], ["value"])

    @translated
    def log_run_artifact(
        self, run_id: str, name: str, ref: ArtifactRef, step_run_id: int | None = None
    ) -> None:
        """Attach an artifact to a run under a label; logging the label again replaces it."""
        with self.engine.begin() as conn:
            insert_ignore(conn, t.artifacts, [artifact_row(ref, time.time())])
            upsert(
                conn,
                t.run_artifacts,
                [
                    {
                        "run_id": run_id,
                        "step_run_id": step_run_id,
                        "name": name,
                        "artifact_key": ref.key,
                        **use_row(ref),
                    }
                ],
                ["run_id", "name"],
                [
                    "step_run_id",
                    "artifact_key",
                    "serializer",
                    "serializer_version",
                    "type_name",
                    "pickled",
                ],
            )

    @translated
    def run_artifacts(self, run_id: str) -> list[LoggedArtifact]:
        query = (
            sa.select(
                t.run_artifacts.c.name,
                t.run_artifacts.c.step_run_id,
                *st.use_columns(t.run_artifacts),
            )
            .join(t.artifacts, t.artifacts.c.key == t.run_artifacts.c.artifact_key)
            .where(t.run_artifacts.c.run_id == run_id)
            .order_by(t.run_artifacts.c.name)
        )
        with self.engine.connect() as conn:
            return [
                LoggedArtifact(r.name, ref_from_row(r), r.step_run_id) for r in conn.execute(query)
            ]

    @translated
    def get_artifact(self, key: str) -> ArtifactRef:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.artifacts).where(t.artifacts.c.key == key)).first()
        if row is None:
            raise ArtifactNotFoundError(
                f"No artifact with key {key!r} in the metadata store at {masked(self.url)}."
            )
        return ref_from_row(row)

    @translated
    def all_artifacts(self) -> Iterator[ArtifactRef]:
        """Every artifact the store knows, small ones with their inline bytes."""
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(sa.select(t.artifacts)):
                yield ref_from_row(row)

    @translated
    def integrity_problems(self) -> list[str]:
        """What the database's own consistency check reports (empty when healthy)."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                problems = [] if rows == ["ok"] else rows
                problems += [
                    f"foreign key violation in {r[0]} row {r[1]}"
                    for r in conn.exec_driver_sql("PRAGMA foreign_key_check")
                ]
                return problems
            conn.exec_driver_sql("SELECT 1")
            return []
