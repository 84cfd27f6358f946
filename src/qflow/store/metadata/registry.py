"""The model registry's tables (``RegistryStore``): models, versions, tags, aliases and alias
history, in the metadata database (one database per project, one set of migrations).

Writes are short transactions; version numbers are taken as ``max + 1`` in the inserting
transaction and retried when two registrations race for the same number.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from qflow.errors import ModelNotFoundError, did_you_mean
from qflow.store.metadata import schema as t
from qflow.store.metadata.database import Database, Retry, translated
from qflow.store.metadata.records import AliasChange, ModelVersion, RegisteredModel

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_RETRIES = 8


class RegistryQueries(Database):
    """Registered models and their versions, tags and aliases."""

    # -- versions --------------------------------------------------------------------------

    @translated(retry=Retry.UNCOMMITTED)  # a second try would add a second version
    def create_model_version(self, fields: Mapping[str, Any], tags: Mapping[str, str]) -> int:
        """Insert a version of ``fields["name"]`` (creating the model) and return its number."""
        name = fields["name"]
        now = time.time()
        for attempt in range(_RETRIES):
            try:
                with self.engine.begin() as conn:
                    exists = conn.execute(
                        sa.select(t.registered_models.c.name).where(
                            t.registered_models.c.name == name
                        )
                    ).first()
                    if exists is None:
                        conn.execute(
                            t.registered_models.insert().values(
                                name=name,
                                description=None,
                                created_at=now,
                                created_by=fields.get("created_by"),
                            )
                        )
                    latest = conn.execute(
                        sa.select(sa.func.max(t.model_versions.c.version)).where(
                            t.model_versions.c.name == name
                        )
                    ).scalar()
                    version = int(latest or 0) + 1
                    row = {
                        **fields,
                        "version": version,
                        "created_at": now,
                        "signature": _json_or_none(fields.get("signature")),
                        "environment": json.dumps(fields.get("environment") or {}),
                    }
                    conn.execute(t.model_versions.insert().values(**row))
                    self._write_tags(conn, name, version, tags)
                    return version
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    @translated
    def model_version(self, name: str, version: int) -> ModelVersion:
        with self.engine.connect() as conn:
            found = self._versions(conn, name, [version])
        if not found:
            known = self.model_version_numbers(name)
            raise ModelNotFoundError(
                f"Model {name!r} has no version {version}. It has versions "
                f"{', '.join(map(str, known)) or '(none)'}."
            )
        return found[0]

    @translated
    def model_versions(self, name: str) -> list[ModelVersion]:
        self.require_model(name)
        with self.engine.connect() as conn:
            return self._versions(conn, name, None)

    @translated
    def model_version_numbers(self, name: str) -> list[int]:
        query = sa.select(t.model_versions.c.version).where(t.model_versions.c.name == name)
        with self.engine.connect() as conn:
            return sorted(int(v) for v in conn.execute(query).scalars())

    @translated
    def latest_model_version(self, name: str) -> int:
        self.require_model(name)
        query = sa.select(sa.func.max(t.model_versions.c.version)).where(
            t.model_versions.c.name == name
        )
        with self.engine.connect() as conn:
            latest = conn.execute(query).scalar()
        if latest is None:
            raise ModelNotFoundError(f"Model {name!r} has no versions yet.")
        return int(latest)

    def _versions(
        self, conn: Connection, name: str, numbers: Sequence[int] | None
    ) -> list[ModelVersion]:
        v = t.model_versions.c
        a = t.artifacts.c
        io = t.step_io.c
        # the serializer of the registered step output itself (artifacts rows are shared by
        # values with the same bytes); rows from before migration 0009 fall back to the artifact
        query = (
            sa.select(
                t.model_versions,
                sa.func.coalesce(io.serializer, a.serializer).label("serializer"),
                sa.func.coalesce(io.type_name, a.type_name).label("type_name"),
                a.size,
            )
            .join(t.artifacts, a.key == v.artifact_key)
            .outerjoin(
                t.step_io,
                sa.and_(
                    io.step_run_id == v.step_run_id,
                    io.direction == "out",
                    io.name == v.output,
                ),
            )
            .where(v.name == name)
            .order_by(v.version)
        )
        if numbers is not None:
            query = query.where(v.version.in_(list(numbers)))
        rows = conn.execute(query).all()
        aliases: dict[int, list[str]] = {}
        for alias, version in conn.execute(
            sa.select(t.model_aliases.c.alias, t.model_aliases.c.version)
            .where(t.model_aliases.c.name == name)
            .order_by(t.model_aliases.c.alias)
        ):
            aliases.setdefault(int(version), []).append(alias)
        tags: dict[int, dict[str, str]] = {}
        for version, key, value in conn.execute(
            sa.select(t.model_tags.c.version, t.model_tags.c.key, t.model_tags.c.value).where(
                t.model_tags.c.name == name, t.model_tags.c.version > 0
            )
        ):
            tags.setdefault(int(version), {})[key] = value
        records = []
        for row in rows:
            fields: dict[str, Any] = row._asdict()
            fields.update(
                signature=json.loads(row.signature) if row.signature else None,
                environment=json.loads(row.environment),
                pickled=bool(row.pickled),
                size=int(row.size),
                aliases=tuple(aliases.get(row.version, ())),
                tags=tags.get(row.version, {}),
            )
            records.append(ModelVersion(**fields))
        return records

    # -- models ----------------------------------------------------------------------------

    @translated
    def model_names(self) -> list[str]:
        query = sa.select(t.registered_models.c.name).order_by(t.registered_models.c.name)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def require_model(self, name: str) -> None:
        """Raise ``ModelNotFoundError`` (with the names it might be) unless ``name`` exists."""
        names = self.model_names()
        if name not in names:
            raise ModelNotFoundError(
                f"No registered model named {name!r}.{did_you_mean(name, names)}\n"
                "Hint: qflow models list shows the models; qflow models register adds one."
            )

    @translated
    def models(self) -> list[RegisteredModel]:
        m = t.registered_models.c
        latest = (
            sa.select(sa.func.max(t.model_versions.c.version))
            .where(t.model_versions.c.name == m.name)
            .scalar_subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.registered_models, latest.label("latest"))).all()
            aliases: dict[str, dict[str, int]] = {}
            for name, alias, version in conn.execute(sa.select(t.model_aliases)):
                aliases.setdefault(name, {})[alias] = int(version)
            tags: dict[str, dict[str, str]] = {}
            for name, key, value in conn.execute(
                sa.select(t.model_tags.c.name, t.model_tags.c.key, t.model_tags.c.value).where(
                    t.model_tags.c.version == 0
                )
            ):
                tags.setdefault(name, {})[key] = value
        return [
            RegisteredModel(
                r.name,
                r.description,
                r.created_at,
                r.created_by,
                None if r.latest is None else int(r.latest),
                aliases.get(r.name, {}),
                tags.get(r.name, {}),
            )
            for r in sorted(rows, key=lambda r: r.name)
        ]

    @translated
    def set_model_description(self, name: str, version: int | None, text: str) -> None:
        with self.engine.begin() as conn:
            if version is None:
                table, where = t.registered_models, t.registered_models.c.name == name
            else:
                table = t.model_versions
                where = sa.and_(
                    t.model_versions.c.name == name, t.model_versions.c.version == version
                )
            conn.execute(table.update().where(where).values(description=text))

    @translated
    def set_model_tags(self, name: str, version: int | None, tags: Mapping[str, str]) -> None:
        with self.engine.begin() as conn:
            self._write_tags(conn, name, version or 0, tags)

    @translated
    def model_tags(self, name: str) -> dict[str, str]:
        c = t.model_tags.c
        query = sa.select(c.key, c.value).where(c.name == name, c.version == 0)
        with self.engine.connect() as conn:
            return {key: value for key, value in conn.execute(query)}

    def _write_tags(
        self, conn: Connection, name: str, version: int, tags: Mapping[str, str]
    ) -> None:
        c = t.model_tags.c
        for key, value in tags.items():
            conn.execute(
                t.model_tags.delete().where(c.name == name, c.version == version, c.key == key)
            )
            conn.execute(
                t.model_tags.insert().values(name=name, version=version, key=key, value=value)
            )

    # -- aliases ---------------------------------------------------------------------------

    @translated
    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None: one indexed lookup, cheap to poll."""
        c = t.model_aliases.c
        query = sa.select(c.version).where(c.name == name, c.alias == alias)
        with self.engine.connect() as conn:
            version = conn.execute(query).scalar()
        return None if version is None else int(version)

    @translated
    def model_aliases(self, name: str) -> dict[str, int]:
        c = t.model_aliases.c
        query = sa.select(c.alias, c.version).where(c.name == name).order_by(c.alias)
        with self.engine.connect() as conn:
            return {a: int(v) for a, v in conn.execute(query)}

    @translated(retry=Retry.UNCOMMITTED)  # a second try would record the move twice
    def move_alias(self, name: str, alias: str, version: int | None, who: str) -> AliasChange:
        """Point ``alias`` at ``version`` (None removes it) and record the move.

        Moves of one model's aliases are serialized (see ``_model_locked``), so each history
        entry's ``previous_version`` is the version the alias really pointed at, and concurrent
        moves neither fail nor interleave.
        """
        c = t.model_aliases.c
        with self._model_locked(name) as conn:
            previous = conn.execute(
                sa.select(c.version).where(c.name == name, c.alias == alias)
            ).scalar()
            if version is None:
                conn.execute(t.model_aliases.delete().where(c.name == name, c.alias == alias))
            elif previous is None:
                conn.execute(
                    t.model_aliases.insert().values(name=name, alias=alias, version=version)
                )
            else:
                conn.execute(
                    t.model_aliases.update()
                    .where(c.name == name, c.alias == alias)
                    .values(version=version)
                )
            change: dict[str, Any] = {
                "name": name,
                "alias": alias,
                "version": version,
                "previous_version": None if previous is None else int(previous),
                "who": who,
                "changed_at": time.time(),
            }
            conn.execute(t.alias_history.insert().values(**change))
        return AliasChange(**change)

    @contextlib.contextmanager
    def _model_locked(self, name: str) -> Iterator[Connection]:
        """A transaction that holds the write lock for ``name``'s aliases until it commits.

        SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the first read
        (pysqlite would otherwise begin only at the first write, after the read). PostgreSQL:
        ``SELECT ... FOR UPDATE`` on the model's row, which every move of its aliases takes
        first (the row exists: aliases reference it).
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(
                    sa.select(t.registered_models.c.name)
                    .where(t.registered_models.c.name == name)
                    .with_for_update()
                )
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @translated
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        c = t.alias_history.c
        query = sa.select(t.alias_history).where(c.name == name)
        if alias is not None:
            query = query.where(c.alias == alias)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.id)).all()
        return [
            AliasChange(r.name, r.alias, r.version, r.previous_version, r.who, r.changed_at)
            for r in rows
        ]


def _json_or_none(value: object) -> str | None:
    return None if value is None else json.dumps(value)
