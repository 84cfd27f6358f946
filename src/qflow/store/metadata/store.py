"""The metadata store: runs, step runs, lineage, params, metrics, tags, on SQLite or PostgreSQL.

Only the coordinator writes here (workers send results back), so every write is one short
transaction. The engine is made lazily and the store pickles as its URL, so a copy can cross a
process boundary without carrying a connection. Queries live in one module per aggregate.
"""

from __future__ import annotations

from qflow.store.metadata.database import normalize_url
from qflow.store.metadata.environments import EnvironmentQueries
from qflow.store.metadata.logs import LogQueries
from qflow.store.metadata.runs import HEARTBEAT_TIMEOUT, RunQueries
from qflow.store.metadata.steps import StepQueries

__all__ = ["HEARTBEAT_TIMEOUT", "MetadataStore", "normalize_url"]


class MetadataStore(RunQueries, StepQueries, LogQueries, EnvironmentQueries):
    """Reads and writes run metadata; migrates the schema to head on first use."""
