"""Where Optuna keeps a project's studies: in the QFlow metadata database itself.

Optuna's ``RDBStorage`` manages its tables with Alembic and the default ``alembic_version``
table; QFlow's own migrations use ``qflow_schema_version``, so both live in one database
(SQLite file or PostgreSQL) without colliding. A sweep lives wherever the project's runs live,
and every machine that reaches the store reaches its sweeps.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import NotFoundError, did_you_mean

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import Engine

_lock = threading.Lock()
_storages: dict[str, optuna.storages.RDBStorage] = {}


class SweepNotFoundError(NotFoundError):
    """No sweep (Optuna study) has this id."""


def optuna_url(store_url: str) -> tuple[str, dict[str, Any]]:
    """The SQLAlchemy URL and engine options Optuna uses for the QFlow store ``store_url``."""
    from sqlalchemy.engine import make_url

    from qflow.store.metadata.store import normalize_url

    url = make_url(normalize_url(store_url))
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return url.render_as_string(hide_password=False), {"connect_args": {"timeout": 60}}
    return url.render_as_string(hide_password=False), {"pool_pre_ping": True}


def require_optuna() -> None:
    """Raise ``MissingExtraError`` with the pip line when Optuna is not installed."""
    import importlib.util

    from qflow.errors import MissingExtraError

    if importlib.util.find_spec("optuna") is None:
        raise MissingExtraError.for_extra("optuna", "sweep")


def open_storage(store_url: str) -> optuna.storages.RDBStorage:
    """The Optuna storage beside the QFlow store at ``store_url`` (one per process)."""
    require_optuna()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, options = optuna_url(store_url)
    with _lock:
        storage = _storages.get(url)
        if storage is None:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=options)
            if storage.engine.dialect.name == "sqlite" and storage.engine.url.database:
                _commit_as_qflow(storage.engine)  # a file: an in-memory one dies with dispose
            _storages[url] = storage
        return storage


def _commit_as_qflow(engine: Engine) -> None:
    """Make Optuna's SQLite connections commit as QFlow's own do in that file: in WAL mode
    with ``synchronous=NORMAL`` (durable when a process dies; the last commits can be lost
    only with the machine). With Optuna's default (``FULL``) every ask, tell and attribute
    write waits for an fsync while holding the database's write lock, which the runs of
    parallel trials then queue behind."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    engine.dispose()  # the connections Optuna opened to check the schema are made again


def study_name(storage: optuna.storages.BaseStorage, sweep_id: str) -> str:
    """The full sweep id for ``sweep_id`` or a unique prefix of one."""
    import optuna

    names = optuna.study.get_all_study_names(storage)
    if sweep_id in names:
        return sweep_id
    matches = [name for name in names if name.startswith(sweep_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise SweepNotFoundError(
            f"Sweep id {sweep_id!r} is ambiguous: it starts {', '.join(sorted(matches)[:5])}. "
            "Hint: give more characters."
        )
    raise SweepNotFoundError(
        f"No sweep {sweep_id!r} in this project.{did_you_mean(sweep_id, names)}\n"
        "Hint: qflow sweeps list shows the project's sweeps."
    )
