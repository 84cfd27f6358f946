"""The dashboard's run queries, as calls on the metadata-store contract.

The queries themselves are ``RunQueryStore`` methods (``qflow.store.contract``), implemented by
the SQL store (``qflow.store.metadata.search``) and the HTTP store alike; these functions keep
the names the web routes use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qflow.store.contract import CHART_POINTS, MAX_PAGE
from qflow.store.wire import finite

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import Run, RunsPage

__all__ = [
    "CHART_POINTS",
    "MAX_PAGE",
    "metric_history",
    "metric_keys",
    "runs_matching",
    "runs_page",
    "workflows",
]

_number = finite


def runs_page(metadata: MetadataStore, **options: Any) -> RunsPage:
    """One page of runs: ``RunQueryStore.runs_page``."""
    return metadata.runs_page(**options)


def workflows(metadata: MetadataStore) -> list[dict[str, Any]]:
    """Each workflow with its number of runs and the time of its latest one."""
    return metadata.workflow_stats()


def metric_keys(metadata: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    return metadata.metric_keys(run_id)


def metric_history(
    metadata: MetadataStore, run_id: str, key: str, **options: Any
) -> dict[str, Any]:
    return metadata.metric_history(run_id, key, **options)


def runs_matching(metadata: MetadataStore, filter_text: str, **options: Any) -> list[Run]:
    return metadata.runs_matching(filter_text, **options)
