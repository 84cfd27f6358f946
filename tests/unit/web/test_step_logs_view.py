"""The dashboard's log view shows a step's log records (INFO and up for the project's
loggers), for steps run on the local and the parallel executor."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import qflow as qf

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

TOKEN = "test-token-0123456789"
logger = logging.getLogger(__name__)


@qf.step
def evaluate(r2: float) -> float:
    logger.debug("not kept at INFO")
    logger.info("Model has a coefficient R^2 of %.3f on test data.", r2)
    return r2


@qf.workflow
def evaluated(r2: float = 0.456) -> Any:
    return evaluate(r2)


@pytest.mark.parametrize("executor", ["local", "parallel"])
def test_the_log_view_shows_a_steps_info_records(project: Path, executor: str) -> None:
    from qflow.web.app import Settings, create_app

    run = qf.run(evaluated, {}, project_dir=project, executor=executor, workers=1)
    settings = Settings(
        store_url=f"sqlite:///{project / '.qflow' / 'qflow.db'}",
        artifacts_url=str(project / ".qflow" / "artifacts"),
        project_dir=project,
        token=TOKEN,
        allowed_hosts=("testserver",),
    )
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        logs = client.get(f"/api/runs/{run.id}/logs", params={"step": "0_evaluate"}).json()
    stderr = logs[0]["stderr"]
    assert f"INFO {__name__}: Model has a coefficient R^2 of 0.456 on test data." in stderr
    assert "not kept at INFO" not in stderr
