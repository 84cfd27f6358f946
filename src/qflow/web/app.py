"""``create_app(settings)``: the tracking server's FastAPI app, REST API and dashboard.

```python
from qflow.web.app import Settings, create_app

app = create_app(Settings(store_url="sqlite:///.qflow/qflow.db", artifacts_url=".qflow/artifacts",
                          token="secret"))
```
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from qflow.web import errors
from qflow.web.context import Context, context
from qflow.web.security import SecurityMiddleware
from qflow.web.settings import Settings

__all__ = ["Context", "Settings", "context", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    """The app for ``settings`` (checked: see ``Settings.checked``)."""
    from qflow.web.routes import (
        api_artifacts,
        api_lineage,
        api_metrics,
        api_models,
        api_reports,
        api_run,
        api_runs,
        api_store,
        api_stream,
        launch,
        mlflow_api,
        pages,
    )

    settings = settings.checked()
    ctx = Context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(
        lifespan=lifespan,
        title="QFlow tracking server",
        version="1",
        description="Runs, metrics, graphs, lineage, models, launches and the remote store.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.ctx = ctx
    errors.install(app)
    for router in (
        api_runs.router,  # before api_run: /runs/groups is not a run id
        api_run.router,
        api_metrics.router,
        api_stream.router,
        api_artifacts.router,
        api_reports.router,
        api_lineage.router,
        api_models.router,
        launch.router,
        api_store.router,
        pages.router,
    ):
        app.include_router(router)
    app.include_router(mlflow_api.router)  # MLflow's tracking REST API (mlflow_api.py)
    app.add_middleware(
        SecurityMiddleware,
        token=settings.token or "",
        allowed_hosts=settings.allowed_hosts,
        max_body_bytes=settings.max_body_bytes,
        secure_cookies=settings.secure_cookies,
    )
    return app
