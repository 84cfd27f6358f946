"""The metadata database: URL handling, engine, migrations, errors that name the store."""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from qflow.errors import StoreError
from qflow.store.metadata.filesystem import (
    ALLOW_ENV,
    network_filesystem,
    network_sqlite_allowed,
)
from qflow.store.metadata.schema import VERSION_TABLE

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="Database")

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain PostgreSQL URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


def first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(cause).__name__


STORE_RETRY_SECONDS = 30.0
"""How long a store call is retried through transient database failures."""

_RETRYABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
_in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("qflow_store_call", default=False)
_commit_sent: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "qflow_commit_sent", default=False
)


class Retry(enum.Enum):
    """When a store call that failed on a transient error is made again."""

    IDEMPOTENT = "idempotent"
    """Always: running it twice records what running it once does."""
    UNCOMMITTED = "uncommitted"
    """Only if the failure came before a COMMIT was sent (nothing of it can be recorded);
    after that, whether the commit happened is unknown, and a second run could record twice."""
    NEVER = "never"
    """Never here: the method retries by itself."""


def retryable(exc: SQLAlchemyError) -> bool:
    """A failure that may pass when the call is made again: the connection was lost, refused
    or shut down by the server, a deadlock or serialization conflict, SQLite busy; never a
    constraint, a bad value, a missing table or a full disk."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return str(state).startswith("08") or state in _RETRYABLE_SQLSTATES
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        if "sqlite" in type(exc.orig).__module__:
            return "database is locked" in message or "database table is locked" in message
        return True  # a client-side connection failure (refused, closed): no SQLSTATE
    return isinstance(exc, InterfaceError)


def _track_commits(engine: Engine) -> None:
    """Note in the caller's context whether a COMMIT has been sent since the last BEGIN:
    a failure after it leaves unknown whether the transaction was recorded."""

    @sa.event.listens_for(engine, "begin")
    def _begin(_conn: Any) -> None:
        _commit_sent.set(False)

    @sa.event.listens_for(engine, "commit")
    def _commit(_conn: Any) -> None:
        _commit_sent.set(True)


@overload
def translated(method: Callable[Concatenate[S, P], R], /) -> Callable[Concatenate[S, P], R]: ...


@overload
def translated(
    *, retry: Retry
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]: ...


def translated(
    method: Callable[Concatenate[S, P], R] | None = None, /, *, retry: Retry = Retry.IDEMPOTENT
) -> (
    Callable[Concatenate[S, P], R]
    | Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]
):
    """Turn database errors into one-line ``StoreError``s that name the store, and make the
    call again, with backoff for up to ``STORE_RETRY_SECONDS``, after a transient failure (a
    connection killed or refused, the server restarting, a deadlock) as ``retry`` allows.

    Only once the store has connected (a wrong URL fails at once), and only for the outermost
    store call: one that calls another is retried as a whole.
    """

    def decorate(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if _in_call.get():
                return method(self, *args, **kwargs)
            deadline = time.monotonic() + STORE_RETRY_SECONDS
            delay = 0.05
            while True:
                outer = _in_call.set(True)
                _commit_sent.set(False)
                try:
                    return method(self, *args, **kwargs)
                except SQLAlchemyError as exc:
                    again = (
                        retry is not Retry.NEVER
                        and self._engine is not None
                        and retryable(exc)
                        and not (retry is Retry.UNCOMMITTED and _commit_sent.get())
                        and time.monotonic() + delay < deadline
                    )
                    if not again:
                        raise self._store_error(exc) from exc
                finally:
                    _in_call.reset(outer)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

        functools.update_wrapper(wrapper, method)
        return wrapper

    return decorate if method is None else decorate(method)


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
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


class Database:
    """A connection to the metadata database: made lazily, migrated to the newest schema on
    first use, and pickled as its URL alone so it can cross process boundaries."""

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
        return f"MetadataStore({masked(self.url)!r})"

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
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
            _track_commits(engine)
            return engine
        if url.database and url.database != ":memory:":
            folder = Path(url.database).parent
            _refuse_network_filesystem(folder)
            folder.mkdir(parents=True, exist_ok=True)
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

        _track_commits(engine)
        return engine

    def _migrate(self, engine: Engine) -> None:
        """Bring the schema to the newest revision if it is behind.

        The check is one query (the version table's row against the newest revision file's
        id); Alembic is imported only when a migration is due. A new database (no table in
        its default schema, SQLite or PostgreSQL) gets the tables from ``schema.metadata`` and
        is stamped at the newest revision: the schema the migrations build, which
        ``tests/integration/test_startup.py`` checks on both.
        """
        head = schema_head()
        if head is not None and _stored_revision(engine) == head:
            return
        # Several processes may open a new store at once: one migrates, the others wait and
        # then find the schema at head.
        with migration_lock(engine), engine.begin() as conn:
            tables = sa.inspect(conn).get_table_names()
            current = _revision(conn) if VERSION_TABLE in tables else None
            if head is not None and current == head:
                return
            if head is not None and not tables:
                _create_at_head(conn, head)
                return
            _upgrade(conn)

    def _store_error(self, exc: SQLAlchemyError) -> StoreError:
        where = masked(self.url)
        reason = first_line(exc)
        if isinstance(exc, OperationalError) and self._engine is None:
            return StoreError(
                f"Cannot connect to the metadata store at {where}: {reason}. "
                "Hint: start the server or fix QFLOW_STORE."
            )
        return StoreError(
            f"The metadata store at {where} failed: {reason}. "
            "Hint: check the database is reachable and not full, then retry."
        )


def _refuse_network_filesystem(folder: Path) -> None:
    """SQLite on NFS/SMB can lose or corrupt what runs recorded: say so before it happens."""
    kind = network_filesystem(folder)
    if kind is not None and not network_sqlite_allowed():
        raise StoreError(
            f"The metadata database folder {str(folder)!r} is on a network file system "
            f"({kind}), where SQLite's locks are unreliable: concurrent runs could corrupt it "
            "or lose what they recorded.\nHint: use PostgreSQL (QFLOW_STORE=postgresql://…) "
            f"or a local disk; to accept the risk, set {ALLOW_ENV}=1."
        )


@functools.cache
def schema_head() -> str | None:
    """The newest migration's revision id, read from the revision files without Alembic;
    None when they do not form one line (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision(?:\s*:\s*str)?\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
        down = re.search(r"^down_revision\b[^=]*=(.*)$", text, re.M)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        parents.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    """The revision the database is at, in one query; None if it has no version table yet."""
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").first()
    except DBAPIError:
        return None
    return None if row is None else str(row[0])


def _revision(conn: sa.Connection) -> str | None:
    row = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").first()
    return None if row is None else str(row[0])


def _create_at_head(conn: sa.Connection, head: str) -> None:
    """A new database: the newest schema at once, stamped as Alembic stamps it."""
    from qflow.store.metadata.schema import metadata

    metadata.create_all(conn, checkfirst=False)  # the database is empty: nothing to check
    conn.exec_driver_sql(
        f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
        f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
    )
    conn.execute(
        sa.text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)"), {"head": head}
    )


def _upgrade(conn: sa.Connection) -> None:
    """Run the Alembic migrations up to head on ``conn`` (imports Alembic)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
