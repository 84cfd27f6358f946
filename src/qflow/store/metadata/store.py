"""The SQL metadata store: runs, step runs, lineage, params, metrics, tags, on SQLite or PostgreSQL.

Only the coordinator writes here (workers send results back), so every write is one short
transaction. The engine is made lazily and the store pickles as its URL, so a copy can cross a
process boundary without carrying a connection. Queries live in one module per aggregate; the
contract they implement is ``qflow.store.contract.MetadataStore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qflow.errors import StoreError
from qflow.store.metadata.database import normalize_url
from qflow.store.metadata.environments import EnvironmentQueries
from qflow.store.metadata.experiments import ExperimentQueries
from qflow.store.metadata.logs import LogQueries
from qflow.store.metadata.output import OutputQueries
from qflow.store.metadata.registry import RegistryQueries
from qflow.store.metadata.runs import HEARTBEAT_TIMEOUT
from qflow.store.metadata.search import SearchQueries
from qflow.store.metadata.steps import StepQueries

if TYPE_CHECKING:
    from qflow.store import contract

__all__ = ["HEARTBEAT_TIMEOUT", "MetadataStore", "SqlMetadataStore", "normalize_url", "sql_store"]


class SqlMetadataStore(
    SearchQueries,
    StepQueries,
    OutputQueries,
    LogQueries,
    EnvironmentQueries,
    RegistryQueries,
    ExperimentQueries,
):
    """Reads and writes run metadata in SQL; migrates the schema to head on first use."""


MetadataStore = SqlMetadataStore
"""The SQL store under its historical name: ``MetadataStore(url)`` opens one. Code that only
needs the contract annotates with ``qflow.store.contract.MetadataStore`` instead."""


def sql_store(metadata: contract.MetadataStore, needs: str) -> SqlMetadataStore:
    """``metadata`` as the SQL store, for what the contract cannot do (``qflow gc``, schema
    checks); a store on a tracking server is refused with a message naming ``needs``."""
    if isinstance(metadata, SqlMetadataStore):
        return metadata
    raise StoreError(
        f"{needs} needs direct database access, and the metadata store is {metadata!r}. "
        "Hint: unset QFLOW_TRACKING_URI and point QFLOW_STORE at the database instead."
    )


if TYPE_CHECKING:
    _sql_is_a_metadata_store: type[contract.MetadataStore] = SqlMetadataStore
