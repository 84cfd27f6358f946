"""MLflow's own client against ``qflow server``'s MLflow REST API, and differentially against
a real ``mlflow server``: the same random call sequence, then what the client reads back."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qflow as qf
from qflow.cli.app import run_cli
from tests.fixtures.servers import mlflow_server, qflow_server

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

TOKEN = "s3cret-token"
SCRIPT = """
import sys
from pathlib import Path
import mlflow

mlflow.set_experiment("churn")
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_params({"site": "A", "C": 0.5})
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metric("accuracy", 0.93)
    mlflow.set_tag("purpose", "compare")
    note = Path(sys.argv[1]) / "notes.txt"
    note.write_text("hello from mlflow")
    mlflow.log_artifact(str(note), "reports")
print(run.info.run_id)
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """(project folder, qflow server url with token auth, mlflow server url)."""
    project = tmp_path_factory.mktemp("qflow-project")
    root = tmp_path_factory.mktemp("mlflow-root")
    with qflow_server(project, TOKEN) as qflow_url, mlflow_server(root) as mlflow_url:
        yield project, qflow_url, mlflow_url


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)


def test_unchanged_mlflow_script_logs_into_qflow(
    servers: tuple[Path, str, str], tmp_path: Path, capsys: Any
) -> None:
    project, url, _ = servers
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": TOKEN}
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]

    run = qf.Client(project).run(run_id)  # QFlow's own view of the MLflow run
    assert (run.workflow, run.status) == ("churn", "succeeded")
    assert run.params == {"site": "A", "C": "0.5"}
    assert run.tags["purpose"] == "compare" and run.tags["mlflow.runName"] == "baseline"
    assert [(m.step, m.value) for m in run.metric_history("loss")] == [
        (0, 1.0),
        (1, 0.5),
        (2, 1.0 / 3),
    ]
    assert [a.name for a in run.artifacts] == ["reports/notes.txt"]
    assert run_cli(["runs", "--json", "-C", str(project)]) == 0
    assert run_id in capsys.readouterr().out

    client = MlflowClient(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
        read = client.get_run(run_id)
        assert read.data.metrics == {"loss": 1.0 / 3, "accuracy": 0.93}
        assert [a.path for a in client.list_artifacts(run_id, "reports")] == ["reports/notes.txt"]
        local = client.download_artifacts(run_id, "reports/notes.txt", str(tmp_path))
        assert Path(local).read_text() == "hello from mlflow"
        found = client.search_runs([read.info.experiment_id], "params.site = 'A'")
        assert [r.info.run_id for r in found] == [run_id]


def test_token_is_required(servers: tuple[Path, str, str], monkeypatch: Any) -> None:
    _, url, _ = servers
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException, match=r"401|token"):
        MlflowClient(url).search_experiments()


def test_unsupported_endpoint_is_501_naming_it(servers: tuple[Path, str, str]) -> None:
    _, url, _ = servers
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(
        f"{url}/api/2.0/mlflow/experiments/delete", json={"experiment_id": "x"}, headers=headers
    )
    assert response.status_code == 501
    body = response.json()
    assert body["error_code"] == "ENDPOINT_NOT_FOUND"
    assert "POST /api/2.0/mlflow/experiments/delete" in body["message"]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            {"metrics": [{"key": "loss", "value": 1, "timestamp": 5}, {"key": "loss"}]},
            "Metric 1 ('loss'): value None is not a number.",
        ),
        (
            {"metrics": [{"key": "loss", "value": "high", "timestamp": 5}]},
            "Metric 0 ('loss'): value 'high' is not a number.",
        ),
        (
            {"metrics": [{"key": "loss", "value": 1, "timestamp": 5, "step": "1.5"}]},
            "Metric 0 ('loss'): step '1.5' is not a whole number.",
        ),
        ({"params": [{"value": "A"}]}, "'params' must be a list of objects, each with a"),
        ({"tags": "purpose=x"}, "'tags' must be a list of objects, each with a non-empty 'key'."),
    ],
    ids=["no-value", "text-value", "fractional-step", "param-without-key", "tags-not-a-list"],
)
def test_a_malformed_batch_is_a_400_naming_the_entry(
    servers: tuple[Path, str, str], token: None, batch: dict[str, Any], message: str
) -> None:
    """MLflow's client checks what it sends; another client's bad batch is refused whole,
    with MLflow's error format, and nothing of it is logged."""
    _, url, _ = servers
    client = MlflowClient(url)
    run = client.create_run(client.create_experiment(f"bad-{uuid.uuid4().hex[:8]}"))
    response = httpx.post(
        f"{url}/api/2.0/mlflow/runs/log-batch",
        json={"run_id": run.info.run_id, **batch},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and message in body["message"]
    read = client.get_run(run.info.run_id).data
    assert (read.metrics, read.params) == ({}, {})


def test_deleting_a_running_run_ends_it_killed(servers: tuple[Path, str, str], token: None) -> None:
    """The one documented difference from ``mlflow server``: QFlow never deletes a run that
    is still running, so the API ends it KILLED first."""
    _, url, _ = servers
    client = MlflowClient(url)
    experiment = client.create_experiment(f"delete-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    client.delete_run(run.info.run_id)
    read = client.get_run(run.info.run_id)
    assert (read.info.lifecycle_stage, read.info.status) == ("deleted", "KILLED")
    assert client.search_runs([experiment]) == []


# -- differential -----------------------------------------------------------------------------

KEYS = st.sampled_from(["m0", "m1", "m2"])
PARAMS = st.sampled_from(["p0", "p1", "p2"])
TAGS = st.sampled_from(["t0", "t1"])
VALUES = st.floats(-10, 10, allow_nan=False).map(lambda v: round(v, 3))
STEPS = st.integers(0, 4)
RUN = st.integers(0, 3)

OPERATION = st.one_of(
    st.tuples(st.just("create"), st.none()),
    st.tuples(st.just("metric"), st.tuples(RUN, KEYS, VALUES, STEPS)),
    st.tuples(st.just("param"), st.tuples(RUN, PARAMS)),
    st.tuples(st.just("tag"), st.tuples(RUN, TAGS, st.sampled_from(["a", "b", "c"]))),
    st.tuples(
        st.just("batch"),
        st.tuples(
            RUN,
            st.lists(st.tuples(KEYS, VALUES, STEPS), max_size=5),
            st.lists(PARAMS, max_size=3, unique=True),
        ),
    ),
    st.tuples(st.just("end"), st.tuples(RUN, st.sampled_from(["FINISHED", "FAILED", "KILLED"]))),
    st.tuples(st.just("delete"), RUN),
)
FILTERS = st.one_of(
    st.builds(
        lambda k, op, v: f"metrics.{k} {op} {v}",
        KEYS,
        st.sampled_from([">", "<", ">=", "<=", "=", "!="]),
        VALUES,
    ),
    st.builds(lambda k: f"params.{k} = 'v-{k}'", PARAMS),
    st.builds(lambda k, v: f"tags.{k} = '{v}'", TAGS, st.sampled_from(["a", "b"])),
    st.builds(lambda s: f"attributes.status = '{s}'", st.sampled_from(["RUNNING", "FINISHED"])),
)


class Driver:
    """Applies operations to one server through MLflow's client, and reads the result back.

    Runs are named r0, r1…; an operation on a run that does not exist, or that would end an
    already ended run (QFlow never moves a final status) or delete a running one (see
    ``test_deleting_a_running_run_ends_it_killed``), is skipped on both servers alike."""

    def __init__(self, url: str, experiment: str) -> None:
        self.client = MlflowClient(url)
        self.experiment = self.client.create_experiment(experiment)
        self.runs: list[str] = []
        self.ended: set[int] = set()
        self.clock = itertools.count(1_700_000_000_000)

    def apply(self, kind: str, args: Any) -> str:
        """Run one operation; its outcome ("ok", "skipped" or the MLflow error code)."""
        if kind == "create":
            run = self.client.create_run(self.experiment, run_name=f"r{len(self.runs)}")
            self.runs.append(run.info.run_id)
            return "ok"
        index = args if isinstance(args, int) else args[0]
        if index >= len(self.runs) or (kind in ("end",) and index in self.ended):
            return "skipped"
        if kind == "delete" and index not in self.ended:
            return "skipped"
        run_id = self.runs[index]
        try:
            if kind == "metric":
                _, key, value, step = args
                self.client.log_metric(run_id, key, value, timestamp=next(self.clock), step=step)
            elif kind == "param":
                self.client.log_param(run_id, args[1], f"v-{args[1]}")
            elif kind == "tag":
                self.client.set_tag(run_id, args[1], args[2])
            elif kind == "batch":
                _, metrics, params = args
                self.client.log_batch(
                    run_id,
                    metrics=[Metric(k, v, next(self.clock), s) for k, v, s in metrics],
                    params=[Param(k, f"v-{k}") for k in params],
                    tags=[RunTag("batch", str(len(metrics)))],
                )
            elif kind == "end":
                self.client.set_terminated(run_id, args[1])
                self.ended.add(index)
            elif kind == "delete":
                self.client.delete_run(run_id)
        except MlflowException as exc:
            return str(exc.error_code)
        return "ok"

    def state(self) -> dict[str, Any]:
        """What the client reads back, by run name (ids differ between servers)."""
        runs = {}
        for run_id in self.runs:
            run = self.client.get_run(run_id)
            history = {
                key: sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))
                for key in run.data.metrics
            }
            runs[run.info.run_name] = {
                "status": run.info.status,
                "lifecycle": run.info.lifecycle_stage,
                "params": run.data.params,
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                "metrics": run.data.metrics,
                "history": history,
            }
        return runs

    def search(self, text: str) -> list[str]:
        found = self.client.search_runs([self.experiment], text, max_results=100)
        return sorted(r.info.run_name for r in found)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operations=st.lists(OPERATION, min_size=1, max_size=14), filters=st.lists(FILTERS, max_size=3)
)
def test_same_calls_read_back_the_same_as_mlflow_server(
    servers: tuple[Path, str, str],
    token: None,
    operations: list[tuple[str, Any]],
    filters: list[str],
) -> None:
    _, qflow_url, mlflow_url = servers
    name = f"diff-{uuid.uuid4().hex[:10]}"
    ours, theirs = Driver(qflow_url, name), Driver(mlflow_url, name)
    for kind, args in [("create", None), *operations]:
        assert ours.apply(kind, args) == theirs.apply(kind, args), (kind, args)
    assert ours.state() == theirs.state()
    for text in filters:
        assert ours.search(text) == theirs.search(text), text
