"""Issue 17: a dashboard client changes only the workflow's own config. Overrides that would
choose a tracker, executor or store (and so a URL the server fetches or a folder it writes),
add or remove keys, or interpolate ``${oc.env:...}`` are refused before any process starts;
the config preview never shows the server's environment."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from tests.integration.reliability.conftest import write_project

pytestmark = pytest.mark.integration

TOKEN = "launch-token-0123456789"
SECRET = "s3cr3t-from-the-server-env"

WORKFLOWS = """
import qflow as qf


@qf.step
def count(n: int, label: str) -> str:
    return f"{label}:{n}"


@qf.workflow
def counted(cfg):
    return count(cfg.n, cfg.label)
"""

CONFIG = """\
n: 3
label: plain
token: ${oc.env:QFLOW_REL_SECRET,unset}
"""


@pytest.fixture
def launch_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, object, Path]]:
    from qflow.web.app import Settings, create_app

    for name in ("QFLOW_STORE", "QFLOW_ARTIFACTS", "QFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QFLOW_REL_SECRET", SECRET)
    root = write_project(tmp_path / "proj", WORKFLOWS, module="launchwf")
    (root / "conf").mkdir()
    (root / "conf" / "counted.yaml").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(root))
    settings = Settings(
        store_url=f"sqlite:///{root / '.qflow' / 'qflow.db'}",
        artifacts_url=str(root / ".qflow" / "artifacts"),
        project_dir=root,
        token=TOKEN,
        allowed_hosts=("testserver",),
    )
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client, app.state.ctx.launcher, tmp_path


REFUSED = [
    ("tracker.tracking_uri=http://127.0.0.1:9999", "configures QFlow itself"),
    ("+tracker={name:mlflow,tracking_uri:http://127.0.0.1:9999}", "configures QFlow itself"),
    ("tracker=mlflow", "configures QFlow itself"),
    ("executor=ray", "configures QFlow itself"),
    ("+executor.address=ray://10.0.0.1:10001", "configures QFlow itself"),
    ("+store=postgresql://evil/db", "configures QFlow itself"),
    ("hydra.run.dir=/tmp/elsewhere", "configures QFlow itself"),
    ("~label", "only key=value on an existing key"),
    ("+extra=1", "only key=value on an existing key"),
    ("label=${oc.env:QFLOW_REL_SECRET}", "interpolations or resolvers"),
    ("label=${token}", "interpolations or resolvers"),
    ("lable=x", "has no key 'lable'"),
]


@pytest.mark.parametrize(("override", "reason"), REFUSED, ids=[o for o, _ in REFUSED])
def test_overrides_outside_the_workflows_own_config_are_refused(
    launch_client: tuple[TestClient, object, Path], override: str, reason: str
) -> None:
    client, launcher, tmp_path = launch_client
    for response in (
        client.post("/api/launch", json={"workflow": "counted", "overrides": [override]}),
        client.post("/api/launch/workflows/counted/config", json={"overrides": [override]}),
    ):
        assert response.status_code == 422, response.text
        assert reason in response.json()["error"]["message"]
        assert SECRET not in response.text
    assert launcher.launches == {}  # type: ignore[attr-defined]
    assert not list(tmp_path.rglob("mlflow.db"))


def test_the_config_preview_never_shows_the_server_environment(
    launch_client: tuple[TestClient, object, Path],
) -> None:
    client, _, _ = launch_client
    for response in (
        client.get("/api/launch/workflows/counted/config"),
        client.post("/api/launch/workflows/counted/config", json={"overrides": ["n=4"]}),
    ):
        assert response.status_code == 200, response.text
        assert SECRET not in response.text
        assert response.json()["config"]["token"] == "<server environment: not shown>"
    assert response.json()["config"]["n"] == 4


def test_an_override_of_the_workflows_own_key_launches(
    launch_client: tuple[TestClient, object, Path],
) -> None:
    client, _, _ = launch_client
    started = client.post(
        "/api/launch", json={"workflow": "counted", "overrides": ["n=5", "label=web"]}
    )
    assert started.status_code == 202, started.text
    launch_id = started.json()["id"]
    deadline = time.monotonic() + 120
    state = started.json()
    while state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = client.get(f"/api/launch/{launch_id}").json()
    assert state["state"] == "succeeded", state["output"]
    run = client.get(f"/api/runs/{state['run_id']}").json()
    assert run["config"]["n"] == 5
    assert run["config"]["label"] == "web"
