"""What the routes share: the stores, the registry, launches and loaded models.

Routes import ``Context`` and ``context`` from here; ``qflow.web.app`` imports the routes and
builds the app, so the app never sits between two routes (no import cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry
    from qflow.store.artifacts import ArtifactStore
    from qflow.store.metadata.store import MetadataStore
    from qflow.web.launcher import Launcher
    from qflow.web.predict import ModelCache
    from qflow.web.settings import Settings

__all__ = ["Context", "context"]


class Context:
    """What routes share: the stores, the registry, launches and loaded models."""

    def __init__(self, settings: Settings) -> None:
        from qflow.registry.builtin import QFlowRegistry
        from qflow.store.artifacts import ArtifactStore
        from qflow.store.metadata.store import MetadataStore
        from qflow.web.predict import ModelCache

        self.settings = settings
        self.metadata: MetadataStore = MetadataStore(settings.store_url)
        self.artifacts: ArtifactStore = ArtifactStore(settings.artifacts_url)
        self.registry: QFlowRegistry = QFlowRegistry(self.metadata, self.artifacts)
        self.models: ModelCache = ModelCache(self.registry)
        self.launcher: Launcher | None = None
        if settings.project_dir is not None:
            from qflow.web.launcher import Launcher

            self.launcher = Launcher(
                settings.project_dir, settings.store_url, settings.artifacts_url
            )

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.close()
        self.metadata.dispose()


def context(request: Request) -> Context:
    """The app's ``Context`` (a FastAPI dependency)."""
    ctx: Context = request.app.state.ctx
    return ctx
