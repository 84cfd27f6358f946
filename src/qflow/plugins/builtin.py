"""QFlow's own plugin, registered through the ``qflow`` entry point like any other plugin.

It provides the ``filetracker`` tracker (QFlow's own metadata and artifact store, which records
every run anyway, so the tracker object adds nothing) and QFlow's serializers (numpy, Parquet,
JSON, bytes, files, folders, pickle). The other built-ins are registered by plugins in the
layer that implements them, under QFlow's other entry points: the executors
(``qflow.runtime.plugin``), the MLflow and W&B trackers (``qflow.integrations.plugin``) and
the model registries (``qflow.registry.plugin``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from qflow.plugins.markers import hookimpl
from qflow.store.serializers import BUILTIN_SERIALIZERS, Serializer


class FileTracker:
    """The built-in tracker: runs are recorded in ``.qflow/`` by the scheduler itself."""

    name = "filetracker"

    def __repr__(self) -> str:
        return "FileTracker()"


@hookimpl
def register_trackers() -> Mapping[str, Callable[..., object]]:
    return {"filetracker": FileTracker}


@hookimpl
def register_serializers() -> Sequence[Serializer]:
    return BUILTIN_SERIALIZERS
