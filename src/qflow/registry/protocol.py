"""What any model registry offers; the built-in one and the MLflow Model Registry both do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from qflow.registry.signature import Signature
    from qflow.store.metadata.records import AliasChange, ModelVersion


@runtime_checkable
class ModelRegistry(Protocol):
    """Register step outputs as model versions, move aliases, and load models back."""

    def register(
        self,
        run: str,
        output: str,
        *,
        name: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        signature: Signature | None = None,
    ) -> ModelVersion:
        """Register output ``STEP[.OUTPUT]`` of QFlow run ``run`` as a new version of ``name``."""
        ...

    def get(self, ref: str) -> ModelVersion:
        """The version a reference (``NAME@ALIAS``, ``NAME/3``, ``NAME``) points at."""
        ...

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``alias`` at ``version``; the move is recorded."""
        ...

    def load(self, ref: str) -> Any:
        """The model object, after checking its bytes are the ones registered."""
        ...
