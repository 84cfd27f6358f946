"""Experiments recorded before their runs (``RunStore.create_experiment``/``experiments``).

QFlow groups runs by workflow name and needs no record for a group. MLflow's API creates an
experiment first and logs runs into it later, so a name created that way is kept here, in the
metadata database: it survives a server restart and every server process over the same
database sees it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import sqlalchemy as sa

from qflow.store.metadata import schema as t
from qflow.store.metadata import statements as st
from qflow.store.metadata.database import Database, Retry, translated
from qflow.store.metadata.records import Experiment
from qflow.store.metadata.rows import dumps


class ExperimentQueries(Database):
    """Experiments: a name, its tags and when it was created."""

    @translated(retry=Retry.UNCOMMITTED)  # a retry after the commit would answer False
    def create_experiment(self, name: str, tags: Mapping[str, str]) -> bool:
        """Insert the experiment unless the name is taken; whether this call inserted it."""
        row = {"name": name, "tags": dumps(dict(tags)), "created_at": time.time()}
        with self.engine.begin() as conn:
            insert = st.insert_ignore(conn.dialect.name, t.experiments)
            # RETURNING, not rowcount: psycopg reports -1 here whether a row went in or not
            return conn.execute(insert.returning(t.experiments.c.name), row).first() is not None

    @translated
    def experiments(self) -> list[Experiment]:
        c = t.experiments.c
        query = sa.select(c.name, c.tags, c.created_at).order_by(c.name)
        with self.engine.connect() as conn:
            return [
                Experiment(name, dict(json.loads(tags)), created_at)
                for name, tags, created_at in conn.execute(query)
            ]
