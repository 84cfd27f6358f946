"""A project with two finished runs and a registered model, and an app over its stores."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from tests.fixtures.web_project import write_project

TOKEN = "test-token-0123456789"


@dataclass
class WebProject:
    root: Path
    store_url: str
    artifacts_url: str
    runs: list[str]


@pytest.fixture(scope="session")
def web_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProject]:
    """Two runs of ``train`` (C=1 and C=0.1) and model ``clf`` version 1 (from the first)."""
    import qflow as qf

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QFLOW_STORE", raising=False)
        mp.delenv("QFLOW_ARTIFACTS", raising=False)
        mp.delenv("QFLOW_TRACKING_URI", raising=False)
        root = write_project(tmp_path_factory.mktemp("web") / "proj")
        mp.syspath_prepend(str(root))
        mp.chdir(root)
        first = qf.run("train", project_dir=root)
        second = qf.run("train", overrides=["C=0.1"], project_dir=root)
        qf.models.register(first, "fit", name="clf", project_dir=root)
        qf.models.set_alias("clf", "production", 1, project_dir=root)
        yield WebProject(
            root,
            f"sqlite:///{root / '.qflow' / 'qflow.db'}",
            str(root / ".qflow" / "artifacts"),
            [first.id, second.id],
        )
        sys.modules.pop("webwf", None)


def make_settings(project: WebProject, **changes: object) -> object:
    from qflow.web.app import Settings

    fields: dict[str, object] = {
        "store_url": project.store_url,
        "artifacts_url": project.artifacts_url,
        "project_dir": project.root,
        "token": TOKEN,
        "allowed_hosts": ("testserver", "127.0.0.1", "localhost"),
    }
    fields.update(changes)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def app(web_project: WebProject) -> object:
    from qflow.web.app import create_app

    return create_app(make_settings(web_project))  # type: ignore[arg-type]


@pytest.fixture
def client(app: object) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:  # type: ignore[arg-type]
        yield test_client


@pytest.fixture
def anonymous(app: object) -> Iterator[TestClient]:
    with TestClient(app) as test_client:  # type: ignore[arg-type]
        yield test_client
