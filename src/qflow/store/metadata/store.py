"""The metadata store: runs, step runs, lineage, params, metrics, tags, on SQLite or PostgreSQL.

Only the coordinator writes here (workers send results back), so every write is one short
transaction. The engine is made lazily and the store pickles as its URL, so a copy can cross a
process boundary without carrying a connection.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from qflow.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
    RunNotFoundError,
    StepNotFoundError,
    StoreError,
    did_you_mean,
)
from qflow.ids import new_run_id
from qflow.store.artifacts import ArtifactRef
from qflow.store.metadata import schema as t
from qflow.store.metadata import statements as st
from qflow.store.metadata.records import DataFileRecord, LoggedArtifact, Metric, Run, StepRun

P = ParamSpec("P")
R = TypeVar("R")

HEARTBEAT_TIMEOUT = 120.0
_MIGRATIONS = Path(__file__).parent / "migrations"
_METRIC_COLUMNS = ("run_id", "step_run_id", "key", "value", "bits", "step", "timestamp")


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain PostgreSQL URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(cause).__name__


def _translated(
    method: Callable[Concatenate[MetadataStore, P], R],
) -> Callable[Concatenate[MetadataStore, P], R]:
    """Turn database errors into one-line ``StoreError``s that name the store."""

    def wrapper(self: MetadataStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self._store_error(exc) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> object:
    """numpy scalars and arrays become numbers and lists; anything else its ``str``."""
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    return str(value)


def _float_bits(values: Sequence[float]) -> tuple[int, ...]:
    """The IEEE-754 bit patterns as signed int64: the exact value, NaN payloads included."""
    n = len(values)
    return struct.unpack(f"<{n}q", struct.pack(f"<{n}d", *values))


def _bits_float(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
    return value


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """A lock across processes for schema migrations: an advisory lock on PostgreSQL, a
    file lock beside the database on SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(724310)")
            try:
                yield
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(724310)")
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ref(row: Any) -> ArtifactRef:
    return ArtifactRef(
        row.key, row.serializer, int(row.size), row.type_name, bool(row.pickled), row.data
    )


def _artifact_row(ref: ArtifactRef, now: float) -> dict[str, Any]:
    return {**ref.to_dict(), "created_at": now, "data": ref.inline}


class MetadataStore:
    """Reads and writes run metadata; migrates the schema to head on first use."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self._engine: Engine | None = None
        self.engine  # noqa: B018 - connect and migrate now, so a bad URL fails here

    def __getstate__(self) -> dict[str, object]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.url = state["url"]
        self._engine = None

    def __repr__(self) -> str:
        return f"MetadataStore({_masked(self.url)!r})"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            engine = self._create_engine()
            try:
                self._migrate(engine)
            except SQLAlchemyError as exc:
                engine.dispose()
                raise self._store_error(exc) from exc
            self._engine = engine
        return self._engine

    def dispose(self) -> None:
        """Close pooled connections (the store reconnects on next use)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _create_engine(self) -> Engine:
        try:
            url = make_url(self.url)
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(
                f"The metadata store URL {self.url!r} is not valid: {exc}. "
                "Hint: use sqlite:///path/to/qflow.db or postgresql://user@host/db in QFLOW_STORE."
            ) from exc
        if url.get_backend_name() != "sqlite":
            return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "foreign_keys=ON",
                "busy_timeout=30000",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        return engine

    def _migrate(self, engine: Engine) -> None:
        """Upgrade the schema to the newest Alembic revision if it is behind."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
        head = ScriptDirectory.from_config(config).get_current_head()
        with engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        # Several processes may open a new store at once: one migrates, the others wait and
        # then find the schema at head.
        with _migration_lock(engine), engine.begin() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def _store_error(self, exc: SQLAlchemyError) -> StoreError:
        where = _masked(self.url)
        reason = _first_line(exc)
        if isinstance(exc, OperationalError) and self._engine is None:
            return StoreError(
                f"Cannot connect to the metadata store at {where}: {reason}. "
                "Hint: start the server or fix QFLOW_STORE."
            )
        return StoreError(
            f"The metadata store at {where} failed: {reason}. "
            "Hint: check the database is reachable and not full, then retry."
        )

    # -- runs ------------------------------------------------------------------------------

    @_translated
    def create_run(
        self,
        *,
        workflow: str,
        config: dict[str, Any],
        run_id: str | None = None,
        parent_run_id: str | None = None,
        resumed_from: str | None = None,
        sweep_id: str | None = None,
        command: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Run:
        """Record a new running run on this host and process."""
        now = time.time()
        row: dict[str, Any] = {
            "id": run_id or new_run_id(),
            "workflow": workflow,
            "status": "running",
            "created_at": now,
            "ended_at": None,
            "config": _dumps(config),
            "parent_run_id": parent_run_id,
            "resumed_from": resumed_from,
            "sweep_id": sweep_id,
            "host": socket.gethostname(),
            "user": _user(),
            "pid": os.getpid(),
            "command": command,
            "heartbeat_at": now,
            "error": None,
            "meta": _dumps(meta or {}),
        }
        with self.engine.begin() as conn:
            conn.execute(t.runs.insert(), row)
        return Run(**{**row, "config": dict(config), "meta": dict(meta or {})})

    @_translated
    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.runs.update()
                .where(t.runs.c.id == run_id)
                .values(status=status, ended_at=time.time(), error=error)
            )

    @_translated
    def heartbeat(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.runs.update().where(t.runs.c.id == run_id).values(heartbeat_at=time.time())
            )

    @_translated
    def mark_crashed_runs(self) -> list[str]:
        """Mark "running" runs whose process died (on this host) or went silent as crashed."""
        now = time.time()
        host = socket.gethostname()
        with self.engine.begin() as conn:
            running = conn.execute(
                sa.select(t.runs.c.id, t.runs.c.host, t.runs.c.pid, t.runs.c.heartbeat_at).where(
                    t.runs.c.status == "running"
                )
            ).all()
            crashed = [
                r.id
                for r in running
                if (r.host == host and r.pid is not None and not _pid_alive(r.pid))
                or (r.heartbeat_at or 0.0) < now - HEARTBEAT_TIMEOUT
            ]
            if crashed:
                conn.execute(
                    t.runs.update()
                    .where(t.runs.c.id.in_(crashed), t.runs.c.status == "running")
                    .values(
                        status="crashed",
                        ended_at=now,
                        error="The run's process died or stopped sending heartbeats.",
                    )
                )
        return crashed

    @_translated
    def get_run(self, run_id_or_prefix: str) -> Run:
        """A run by exact id or unique id prefix."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id_or_prefix)).all()
            if not rows:
                rows = conn.execute(
                    sa.select(t.runs)
                    .where(t.runs.c.id.startswith(run_id_or_prefix.lower(), autoescape=True))
                    .order_by(t.runs.c.id.desc())
                    .limit(11)
                ).all()
            if len(rows) > 1:
                shown = ", ".join(r.id for r in rows[:10])
                raise RunNotFoundError(
                    f"Run id prefix {run_id_or_prefix!r} matches several runs: {shown}"
                    f"{' …' if len(rows) > 10 else ''}. Hint: type more characters of the id."
                )
            if not rows:
                recent = conn.execute(
                    sa.select(t.runs.c.id).order_by(t.runs.c.created_at.desc()).limit(500)
                ).scalars()
                raise RunNotFoundError(
                    f"No run with id {run_id_or_prefix!r}.{did_you_mean(run_id_or_prefix, recent)}"
                )
            return self._runs(conn, rows)[0]

    @_translated
    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs matching every filter given, newest first."""
        query = sa.select(t.runs).order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
        if workflow is not None:
            query = query.where(t.runs.c.workflow == workflow)
        if status is not None:
            query = query.where(t.runs.c.status == status)
        for key, value in (tags or {}).items():
            query = query.where(
                sa.exists().where(
                    t.tags.c.run_id == t.runs.c.id, t.tags.c.key == key, t.tags.c.value == value
                )
            )
        with self.engine.connect() as conn:
            return self._runs(conn, conn.execute(query.limit(limit)).all())

    @_translated
    def workflows(self) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(t.runs.c.workflow).distinct().order_by(t.runs.c.workflow)
            return list(conn.execute(query).scalars())

    def _runs(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        """Runs with tags, params (run-level ones win over steps') and latest metrics; 3 queries."""
        ids = [r.id for r in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        params: dict[str, dict[str, object]] = {i: {} for i in ids}
        summary: dict[str, dict[str, float]] = {i: {} for i in ids}
        for run_id, key, value in conn.execute(
            sa.select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value).where(t.tags.c.run_id.in_(ids))
        ):
            tags[run_id][key] = value
        run_level: set[tuple[str, str]] = set()
        for run_id, step_run_id, key, value in conn.execute(
            sa.select(t.params.c.run_id, t.params.c.step_run_id, t.params.c.key, t.params.c.value)
            .where(t.params.c.run_id.in_(ids))
            .order_by(t.params.c.id)
        ):
            if (run_id, key) not in run_level:
                params[run_id][key] = json.loads(value)
            if step_run_id is None:
                run_level.add((run_id, key))
        latest = (
            sa.select(sa.func.max(t.metrics.c.id))
            .where(t.metrics.c.run_id.in_(ids))
            .group_by(t.metrics.c.run_id, t.metrics.c.key)
        )
        for run_id, key, bits in conn.execute(
            sa.select(t.metrics.c.run_id, t.metrics.c.key, t.metrics.c.bits).where(
                t.metrics.c.id.in_(latest)
            )
        ):
            summary[run_id][key] = _bits_float(bits)
        runs = []
        for row in rows:
            fields: dict[str, Any] = row._asdict()
            fields.update(
                config=json.loads(row.config),
                meta=json.loads(row.meta),
                tags=tags[row.id],
                params=params[row.id],
                metrics_summary=summary[row.id],
            )
            runs.append(Run(**fields))
        return runs

    # -- step runs -------------------------------------------------------------------------

    @_translated
    def create_step_run(
        self,
        *,
        run_id: str,
        name: str,
        step: str,
        position: int,
        params: dict[str, Any],
        cache_key: str | None = None,
        status: str = "pending",
        source: str | None = None,
    ) -> int:
        """Record a step run; ``source`` (the step's code) is stored once per distinct text."""
        source_key = self._save_source(source) if source is not None else None
        with self.engine.begin() as conn:
            step_run_id = conn.execute(
                t.step_runs.insert()
                .values(
                    run_id=run_id,
                    name=name,
                    step=step,
                    position=position,
                    status=status,
                    cache_key=cache_key,
                    params=_dumps(params),
                    source_key=source_key,
                )
                .returning(t.step_runs.c.id)
            ).scalar_one()
            return int(step_run_id)

    @_translated
    def create_step_runs(self, run_id: str, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        """Record many pending step runs in one transaction; ids come back in entry order.

        Each entry has ``name``, ``step``, ``position``, ``params`` and optionally ``source``
        (the step's code, stored once per distinct text).
        """
        if not entries:
            return []
        rows = [
            {
                "run_id": run_id,
                "name": e["name"],
                "step": e["step"],
                "position": e["position"],
                "status": "pending",
                "params": _dumps(e["params"]),
                "source_key": self._save_source(e["source"]) if e.get("source") else None,
            }
            for e in entries
        ]
        insert = t.step_runs.insert().returning(t.step_runs.c.id, sort_by_parameter_order=True)
        with self.engine.begin() as conn:
            return [int(i) for i in conn.execute(insert, rows).scalars()]

    @_translated
    def start_step_run(
        self,
        step_run_id: int,
        *,
        cache_key: str | None = None,
        fingerprint: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Mark a step run as running, recording what is known only now: its cache key, code
        fingerprint and why it runs."""
        changes: dict[str, object] = {"status": "running", "started_at": time.time()}
        for column, value in (
            ("cache_key", cache_key),
            ("fingerprint", fingerprint),
            ("reason", reason),
        ):
            if value is not None:
                changes[column] = value
        with self.engine.begin() as conn:
            conn.execute(st.UPDATE_STEP_RUN, {"_id": step_run_id, **changes})

    @_translated
    def finish_step_run(
        self,
        step_run_id: int,
        *,
        status: str,
        outputs: dict[str, ArtifactRef] | None = None,
        inputs: dict[str, ArtifactRef] | None = None,
        error: str | None = None,
        traceback: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        attempts: int = 1,
        cached_from: int | None = None,
        cache_key: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        fingerprint: str | None = None,
        reason: str | None = None,
        copy_records_from: int | None = None,
    ) -> None:
        """Record the outcome and the step's lineage (artifacts read and written) atomically.

        Times default to now; executors that ran the step elsewhere pass their own. A step
        served from the cache passes ``copy_records_from`` (its source step run) to take over
        the metrics, params and files that run logged, in the same transaction.
        """
        io = [("in", n, r) for n, r in (inputs or {}).items()]
        io += [("out", n, r) for n, r in (outputs or {}).items()]
        now = time.time()
        times: dict[str, object] = {"ended_at": ended_at if ended_at is not None else now}
        for column, value in (
            ("started_at", started_at),
            ("cache_key", cache_key),
            ("fingerprint", fingerprint),
            ("reason", reason),
        ):
            if value is not None:
                times[column] = value
        changes = {
            "_id": step_run_id,
            "status": status,
            "error": error,
            "traceback": traceback,
            "stdout": stdout,
            "stderr": stderr,
            "attempts": attempts,
            "cached_from": cached_from,
            **times,
        }
        with self.engine.begin() as conn:
            _insert_ignore(conn, t.artifacts, [_artifact_row(ref, now) for _, _, ref in io])
            _insert_ignore(
                conn,
                t.step_io,
                [
                    {"step_run_id": step_run_id, "direction": d, "name": n, "artifact_key": r.key}
                    for d, n, r in io
                ],
            )
            conn.execute(st.UPDATE_STEP_RUN, changes)
            if copy_records_from is not None:
                source = {"run_id": None, "step_run_id": step_run_id, "source": copy_records_from}
                source["run_id"] = conn.execute(
                    sa.select(t.step_runs.c.run_id).where(t.step_runs.c.id == step_run_id)
                ).scalar_one()
                for statement in st.COPY_STEP_RECORDS:
                    conn.execute(statement, source)

    @_translated
    def step_runs(self, run_id: str) -> list[StepRun]:
        """A run's step runs in graph order, with their inputs and outputs."""
        query = sa.select(t.step_runs).where(t.step_runs.c.run_id == run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.step_runs.c.position, t.step_runs.c.id)).all()
            return self._step_runs(conn, rows)

    @_translated
    def get_step_run(self, run_id: str, name: str) -> StepRun:
        """A step run by its name in the run ("3_fit") or by step name when only one ran."""
        steps = self.step_runs(run_id)
        for step_run in steps:
            if step_run.name == name:
                return step_run
        matches = [s for s in steps if s.step == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise StepNotFoundError(
                f"Step {name!r} ran {len(matches)} times in run {run_id!r}: "
                f"{', '.join(s.name for s in matches)}. Hint: pass one of these names."
            )
        known = [s.name for s in steps] + sorted({s.step for s in steps})
        raise StepNotFoundError(f"Run {run_id!r} has no step {name!r}.{did_you_mean(name, known)}")

    @_translated
    def all_artifacts(self) -> Iterator[ArtifactRef]:
        """Every artifact the store knows, small ones with their inline bytes."""
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(sa.select(t.artifacts)):
                yield _ref(row)

    @_translated
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

    @_translated
    def close_step_runs(self, run_id: str, status: str, error: str) -> None:
        """End every step run of ``run_id`` still pending or running (an interrupted run)."""
        with self.engine.begin() as conn:
            conn.execute(
                t.step_runs.update()
                .where(
                    t.step_runs.c.run_id == run_id,
                    t.step_runs.c.status.in_(("pending", "running")),
                )
                .values(status=status, error=error, ended_at=time.time())
            )

    @_translated
    def previous_step_run(self, workflow: str, name: str, before_run: str) -> StepRun | None:
        """The latest finished run of step call ``name`` in an earlier run of ``workflow``:
        what a cache miss is compared against to say what changed."""
        query = (
            sa.select(t.step_runs)
            .join(t.runs, t.runs.c.id == t.step_runs.c.run_id)
            .where(
                t.runs.c.workflow == workflow,
                t.step_runs.c.name == name,
                t.step_runs.c.run_id < before_run,
                t.step_runs.c.status.in_(("succeeded", "cached")),
            )
            .order_by(t.step_runs.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = self._step_runs(conn, conn.execute(query).all())
        return found[0] if found else None

    @_translated
    def record_data_files(self, step_run_id: int, files: Sequence[DataFileRecord]) -> None:
        """Remember the data files (path and hash) a step run read."""
        rows = [
            {
                "step_run_id": step_run_id,
                "name": f.name,
                "path": f.path,
                "sha256": f.sha256,
                "size": f.size,
            }
            for f in files
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(t.data_files.insert(), rows)

    @_translated
    def data_files(self, run_id: str, step_run_id: int | None = None) -> list[DataFileRecord]:
        """Data files read by a run's steps (or by one step run), in step order."""
        query = (
            sa.select(t.data_files, t.step_runs.c.name.label("step_name"))
            .join(t.step_runs, t.step_runs.c.id == t.data_files.c.step_run_id)
            .where(t.step_runs.c.run_id == run_id)
            .order_by(t.step_runs.c.position, t.data_files.c.id)
        )
        if step_run_id is not None:
            query = query.where(t.data_files.c.step_run_id == step_run_id)
        with self.engine.connect() as conn:
            return [
                DataFileRecord(r.name, r.path, r.sha256, int(r.size), r.step_run_id, r.step_name)
                for r in conn.execute(query)
            ]

    @_translated
    def find_cached(self, cache_key: str) -> StepRun | None:
        """The latest succeeded step run with this cache key whose outputs are all recorded."""
        with self.engine.connect() as conn:
            rows = conn.execute(st.FIND_CACHED, {"cache_key": cache_key}).all()
            found = self._step_runs(conn, rows)
        return found[0] if found else None

    def _step_runs(self, conn: Connection, rows: Sequence[Any]) -> list[StepRun]:
        io: dict[int, dict[str, dict[str, ArtifactRef]]] = {
            r.id: {"in": {}, "out": {}} for r in rows
        }
        if rows:
            for row in conn.execute(st.STEP_IO, {"ids": list(io)}):
                io[row.step_run_id][row.direction][row.name] = _ref(row)
        step_runs = []
        for row in rows:
            fields: dict[str, Any] = row._asdict()
            fields.update(
                params=json.loads(row.params), inputs=io[row.id]["in"], outputs=io[row.id]["out"]
            )
            step_runs.append(StepRun(**fields))
        return step_runs

    # -- params, metrics, tags, artifacts --------------------------------------------------

    @_translated
    def log_metrics(
        self, rows: Sequence[tuple[str, int | None, str, float, int | None, float]]
    ) -> None:
        """Append metric rows ``(run_id, step_run_id, key, value, step, timestamp)`` in bulk."""
        if not rows:
            return
        try:
            values = [float(row[3]) for row in rows]
        except (TypeError, ValueError) as exc:
            bad = next(r for r in rows if not _is_number(r[3]))
            raise InvalidValueError(
                f"Metric {bad[2]!r} has the value {bad[3]!r}, which is not a number. "
                "Hint: log a float or int, for example float(x)."
            ) from exc
        params = [
            (row[0], row[1], row[2], None if v != v else v, bits, row[4], row[5])
            for row, v, bits in zip(rows, values, _float_bits(values), strict=True)
        ]
        with self.engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            columns = ", ".join(quote(c) for c in _METRIC_COLUMNS)
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
            marks = ", ".join([mark] * len(_METRIC_COLUMNS))
            conn.exec_driver_sql(f"INSERT INTO metrics ({columns}) VALUES ({marks})", params)

    @_translated
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
                Metric(k, _bits_float(bits), step, ts, sr)
                for k, bits, step, ts, sr in conn.execute(query.order_by(c.id))
            ]

    @_translated
    def log_params(
        self, run_id: str, params: dict[str, object], step_run_id: int | None = None
    ) -> None:
        """Record params once; the same value again is fine, a different one is an error."""
        encoded = {key: _dumps(value) for key, value in params.items()}
        scope = (
            t.params.c.step_run_id.is_(None)
            if step_run_id is None
            else t.params.c.step_run_id == step_run_id
        )
        with self.engine.begin() as conn:
            existing = dict(
                conn.execute(
                    sa.select(t.params.c.key, t.params.c.value).where(
                        t.params.c.run_id == run_id, scope, t.params.c.key.in_(list(encoded))
                    )
                ).all()
            )
            for key, old in existing.items():
                if old != encoded[key]:
                    raise InvalidValueError(
                        f"Param {key!r} is already {old} in run {run_id!r}; it cannot change "
                        f"to {encoded[key]}. Hint: log it under another name, or start a new run."
                    )
            new = [
                {"run_id": run_id, "step_run_id": step_run_id, "key": k, "value": v}
                for k, v in encoded.items()
                if k not in existing
            ]
            if new:
                conn.execute(t.params.insert(), new)

    @_translated
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
        with self.engine.begin() as conn:
            _upsert(conn, t.tags, rows, ["run_id", "key"], ["value"])

    @_translated
    def log_run_artifact(
        self, run_id: str, name: str, ref: ArtifactRef, step_run_id: int | None = None
    ) -> None:
        """Attach an artifact to a run under a label; logging the label again replaces it."""
        with self.engine.begin() as conn:
            _insert_ignore(conn, t.artifacts, [_artifact_row(ref, time.time())])
            _upsert(
                conn,
                t.run_artifacts,
                [
                    {
                        "run_id": run_id,
                        "step_run_id": step_run_id,
                        "name": name,
                        "artifact_key": ref.key,
                    }
                ],
                ["run_id", "name"],
                ["step_run_id", "artifact_key"],
            )

    @_translated
    def run_artifacts(self, run_id: str) -> list[LoggedArtifact]:
        query = (
            sa.select(t.run_artifacts.c.name, t.run_artifacts.c.step_run_id, t.artifacts)
            .join(t.artifacts, t.artifacts.c.key == t.run_artifacts.c.artifact_key)
            .where(t.run_artifacts.c.run_id == run_id)
            .order_by(t.run_artifacts.c.name)
        )
        with self.engine.connect() as conn:
            return [LoggedArtifact(r.name, _ref(r), r.step_run_id) for r in conn.execute(query)]

    @_translated
    def get_artifact(self, key: str) -> ArtifactRef:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.artifacts).where(t.artifacts.c.key == key)).first()
        if row is None:
            raise ArtifactNotFoundError(
                f"No artifact with key {key!r} in the metadata store at {_masked(self.url)}."
            )
        return _ref(row)

    # -- provenance: step sources, environments, artifact uses -----------------------------

    def _save_source(self, source: str) -> str:
        """Keep ``source`` as an inline bytes artifact keyed by its sha256; once per process."""
        data = source.encode()
        key = hashlib.sha256(data).hexdigest()
        known: set[str] = self.__dict__.setdefault("_sources", set())
        if key not in known:
            ref = ArtifactRef(key, "bytes", len(data), "builtins.str", False, data)
            with self.engine.begin() as conn:
                _insert_ignore(conn, t.artifacts, [_artifact_row(ref, time.time())])
            known.add(key)
        return key

    @_translated
    def source(self, key: str) -> str | None:
        """A step source saved by ``create_step_run(source=...)``, or None if unknown."""
        query = sa.select(t.artifacts.c.data).where(t.artifacts.c.key == key)
        with self.engine.connect() as conn:
            data = conn.execute(query).scalar()
        return None if data is None else bytes(data).decode()

    @_translated
    def save_environment(self, hash: str, packages: dict[str, str]) -> None:
        """Store an installed-package list once under its hash (see ``qflow.environment``)."""
        row = {"hash": hash, "packages": _dumps(packages), "created_at": time.time()}
        with self.engine.begin() as conn:
            _insert_ignore(conn, t.environments, [row])

    @_translated
    def environment(self, hash: str) -> dict[str, str] | None:
        """The package list (name → version) stored under ``hash``, or None."""
        query = sa.select(t.environments.c.packages).where(t.environments.c.hash == hash)
        with self.engine.connect() as conn:
            packages = conn.execute(query).scalar()
        return None if packages is None else dict(json.loads(packages))

    @_translated
    def update_run_meta(self, run_id: str, changes: dict[str, Any]) -> None:
        """Merge ``changes`` into a run's ``meta`` (top-level keys replaced)."""
        with self.engine.begin() as conn:
            query = sa.select(t.runs.c.meta).where(t.runs.c.id == run_id)
            meta = json.loads(conn.execute(query).scalar_one())
            meta.update(changes)
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(meta=_dumps(meta)))

    @_translated
    def artifact_uses(self, key: str) -> list[tuple[str, str, str, str]]:
        """Where an artifact was read or written: ``(run_id, step run name, "in"|"out", name)``,
        oldest run first."""
        c = t.step_io.c
        query = (
            sa.select(t.step_runs.c.run_id, t.step_runs.c.name, c.direction, c.name)
            .join(t.step_runs, t.step_runs.c.id == c.step_run_id)
            .where(c.artifact_key == key)
            .order_by(t.step_runs.c.run_id, t.step_runs.c.position, c.direction, c.name)
        )
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]

    @_translated
    def data_file_uses(self, path_or_sha256: str) -> list[DataFileRecord]:
        """Data files read anywhere whose path or sha256 is ``path_or_sha256``, oldest first;
        ``step_name`` is ``run_id/step run name``."""
        query = (
            sa.select(t.data_files, t.step_runs.c.run_id, t.step_runs.c.name.label("step_name"))
            .join(t.step_runs, t.step_runs.c.id == t.data_files.c.step_run_id)
            .where(
                (t.data_files.c.sha256 == path_or_sha256) | (t.data_files.c.path == path_or_sha256)
            )
            .order_by(t.step_runs.c.run_id, t.step_runs.c.position, t.data_files.c.id)
        )
        with self.engine.connect() as conn:
            return [
                DataFileRecord(
                    r.name,
                    r.path,
                    r.sha256,
                    int(r.size),
                    r.step_run_id,
                    f"{r.run_id}/{r.step_name}",
                )
                for r in conn.execute(query)
            ]


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that supports ON CONFLICT for the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _insert_ignore(conn: Connection, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if rows:
        conn.execute(st.insert_ignore(conn.dialect.name, table), rows)


def _upsert(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    if rows:
        stmt = _dialect_insert(conn, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
        conn.execute(stmt, rows)
