"""The registry's view of the metadata store: models, versions, tags, aliases, alias history.

The tables and queries are the store's (``qflow.store.contract.RegistryStore``, implemented in
SQL by ``qflow.store.metadata.registry`` and over HTTP by the tracking server's store), so a
project has one database and the registry works against a tracking server too. This class keeps
the registry's short names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qflow.store.contract import MetadataStore
    from qflow.store.metadata.records import AliasChange, ModelVersion, RegisteredModel


class ModelRegistryStore:
    """Rows in, frozen records out; knows nothing about artifacts or runs beyond their ids."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def create_version(self, fields: Mapping[str, Any], tags: Mapping[str, str]) -> int:
        """Insert a version of ``fields["name"]`` (creating the model) and return its number."""
        return self.metadata.create_model_version(fields, tags)

    def version(self, name: str, version: int) -> ModelVersion:
        return self.metadata.model_version(name, version)

    def versions(self, name: str) -> list[ModelVersion]:
        return self.metadata.model_versions(name)

    def version_numbers(self, name: str) -> list[int]:
        return self.metadata.model_version_numbers(name)

    def latest_version(self, name: str) -> int:
        return self.metadata.latest_model_version(name)

    def model_names(self) -> list[str]:
        return self.metadata.model_names()

    def require_model(self, name: str) -> None:
        self.metadata.require_model(name)

    def models(self) -> list[RegisteredModel]:
        return self.metadata.models()

    def set_description(self, name: str, version: int | None, text: str) -> None:
        self.metadata.set_model_description(name, version, text)

    def set_tags(self, name: str, version: int | None, tags: Mapping[str, str]) -> None:
        self.metadata.set_model_tags(name, version, tags)

    def model_tags(self, name: str) -> dict[str, str]:
        return self.metadata.model_tags(name)

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None: one indexed lookup, cheap to poll."""
        return self.metadata.alias_version(name, alias)

    def aliases(self, name: str) -> dict[str, int]:
        return self.metadata.model_aliases(name)

    def move_alias(self, name: str, alias: str, version: int | None, who: str) -> AliasChange:
        """Point ``alias`` at ``version`` (None removes it) and record the move."""
        return self.metadata.move_alias(name, alias, version, who)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        return self.metadata.alias_history(name, alias)
