"""The metadata database: URL handling, engine, migrations, errors that name the store."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

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


def translated(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """Turn database errors into one-line ``StoreError``s that name the store."""

    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self._store_error(exc) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper


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
            return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
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

        return engine

    def _migrate(self, engine: Engine) -> None:
        """Upgrade the schema to the newest Alembic revision if it is behind."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        head = ScriptDirectory.from_config(config).get_current_head()
        options = {"version_table": VERSION_TABLE}
        with engine.connect() as conn:
            if MigrationContext.configure(conn, opts=options).get_current_revision() == head:
                return
        # Several processes may open a new store at once: one migrates, the others wait and
        # then find the schema at head.
        with migration_lock(engine), engine.begin() as conn:
            if MigrationContext.configure(conn, opts=options).get_current_revision() == head:
                return
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

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
