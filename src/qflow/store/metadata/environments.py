"""Queries for provenance: environments, artifact and data-file uses."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import sqlalchemy as sa

from qflow.store.metadata import schema as t
from qflow.store.metadata.database import Database, translated
from qflow.store.metadata.records import DataFileRecord
from qflow.store.metadata.rows import (
    dumps,
    insert_ignore,
)


class EnvironmentQueries(Database):
    """Recorded environments and where artifacts and data files were used."""

    @translated
    def save_environment(self, hash: str, packages: dict[str, str]) -> None:
        """Store an installed-package list once under its hash (see ``qflow.environment``)."""
        row = {"hash": hash, "packages": dumps(packages), "created_at": time.time()}
        with self.engine.begin() as conn:
            insert_ignore(conn, t.environments, [row])

    @translated
    def environment(self, hash: str) -> dict[str, str] | None:
        """The package list (name → version) stored under ``hash``, or None."""
        query = sa.select(t.environments.c.packages).where(t.environments.c.hash == hash)
        with self.engine.connect() as conn:
            packages = conn.execute(query).scalar()
        return None if packages is None else dict(json.loads(packages))

    @translated
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

    @translated
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

    @translated
    def data_file_reads(
        self, *, paths: Sequence[str] = (), sha256_prefix: str | None = None
    ) -> list[DataFileRecord]:
        """Data files steps of runs that are not deleted read (not wrote) at one of ``paths``
        or whose sha256 starts with ``sha256_prefix``, oldest run first; ``step_name`` is
        ``run_id/step run name``."""
        c = t.data_files.c
        match: list[sa.ColumnElement[bool]] = []
        if paths:
            match.append(c.path.in_(list(paths)))
        if sha256_prefix:
            match.append(c.sha256.startswith(sha256_prefix.lower(), autoescape=True))
        if not match:
            return []
        query = (
            sa.select(t.data_files, t.step_runs.c.run_id, t.step_runs.c.name.label("step_name"))
            .join(t.step_runs, t.step_runs.c.id == c.step_run_id)
            .join(t.runs, t.runs.c.id == t.step_runs.c.run_id)
            .where(sa.or_(*match), t.runs.c.deleted_at.is_(None), ~c.name.startswith("write:"))
            .order_by(t.step_runs.c.run_id, t.step_runs.c.position, c.id)
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
