"""The MLflow tracker against a local SQLite store and a real ``mlflow server`` subprocess."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import StepFailedError
from tests.fixtures import outage_workflows as ow
from tests.fixtures import servers
from tests.fixtures import tracker_workflows as tw

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

CONFIG = {"rows": 150, "C": 0.5}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 and a free port, until the module's tests are done."""
    with servers.mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def _runs(client: Any, qflow_run_id: str) -> tuple[Any, dict[str, Any]]:
    """The parent MLflow run of a QFlow run and its children by name."""
    experiment = client.get_experiment_by_name("train")
    assert experiment is not None
    found = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`qflow.run_id` = '{qflow_run_id}'"
    )
    parents = [r for r in found if r.data.tags.get("qflow.kind") == "run"]
    assert len(parents) == 1
    parent = parents[0]
    children = {
        r.info.run_name: r
        for r in found
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    return parent, children


def _check_everything_logged(
    tracking_uri: str, run: Any, *, cache_hit: bool = False, model_id: str | None = None
) -> str:
    """Check the MLflow copy of ``run``; return the id of the model logged for step fit."""
    client = MlflowClient(tracking_uri)
    parent, children = _runs(client, run.id)
    assert parent.info.run_name == f"train-{run.id}"
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"rows": "150", "C": "0.5"}
    # the parent carries the latest value of every step metric, with its history
    assert parent.data.metrics == {"loss": 0.2, "accuracy": run.step("evaluate").load()}
    loss = client.get_metric_history(parent.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in loss) == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert parent.data.tags["qflow.status"] == "succeeded"
    if not cache_hit:  # tags belong to the run that set them; the cache copies step records
        assert parent.data.tags["stage"] == "evaluated"
    assert sorted(children) == ["0_load_data", "1_fit", "2_evaluate"]
    assert all(c.info.status == "FINISHED" for c in children.values())
    fit = children["1_fit"]
    assert fit.data.params == {"C": "0.5", "n_features": "4"}
    history = client.get_metric_history(fit.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert fit.data.tags["qflow.cache_hit"] == str(cache_hit).lower()
    assert fit.data.tags["qflow.step"] == "fit"
    evaluate = children["2_evaluate"]
    assert evaluate.data.metrics["accuracy"] == run.step("evaluate").load()
    files = [a.path for a in client.list_artifacts(evaluate.info.run_id, "curves")]
    assert files == ["curves/accuracy.png"]
    local = client.download_artifacts(evaluate.info.run_id, "curves/accuracy.png")
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    models = client.search_logged_models(
        [parent.info.experiment_id],
        filter_string=f"source_run_id = '{fit.info.run_id}'",
    )
    if model_id is None:
        assert [m.name for m in models] == ["model"]
    else:  # a cached step links the model logged before instead of logging another copy
        assert models == []
        models = [client.get_logged_model(model_id)]
    assert fit.data.tags["qflow.model_id"] == models[0].model_id
    assert models[0].tags["qflow.artifact_key"] == next(iter(run.step("fit").outputs.values())).key
    with _tracking(tracking_uri):
        requirements = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{models[0].artifact_location}/requirements.txt"
        )
        model = mlflow.sklearn.load_model(models[0].model_uri)
        signature = mlflow.models.get_model_info(models[0].model_uri).signature
    X = run.step("load_data").load("X")
    expected = run.step("fit").load().predict(X)
    assert (model.predict(X) == expected).all()
    assert signature is not None and signature.inputs.input_names() == list(X.columns)
    packages = {line.split("==")[0] for line in Path(requirements).read_text().split()}
    assert {"mlflow", "scikit-learn", "skops"} <= packages
    return str(models[0].model_id)


def _tracking(uri: str) -> Any:
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    return _use_tracking_uri(uri)


def test_local_store_gets_parent_children_params_metrics_files_and_model(
    project: Path,
) -> None:
    run = qf.run(tw.train, {**CONFIG, "tracker": "mlflow"}, project_dir=project)
    assert run.status == "succeeded"
    store = project / ".qflow" / "tracker" / "mlflow"
    assert (store / "mlflow.db").is_file()
    model_id = _check_everything_logged(f"sqlite:///{store / 'mlflow.db'}", run)

    again = qf.run(tw.train, {**CONFIG, "tracker": "mlflow"}, project_dir=project)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    _check_everything_logged(uri, again, cache_hit=True, model_id=model_id)
    fit = _runs(MlflowClient(uri), again.id)[1]["1_fit"]
    assert [o.model_id for o in fit.outputs.model_outputs] == [model_id]


def test_params_are_plain_strings_and_run_tags_reach_the_parent(project: Path) -> None:
    config = {"rows": 30, "C": 0.5, "site": "A", "tracker": "mlflow"}
    run = qf.run(tw.by_site, config, project_dir=project, tags={"purpose": "baseline"})
    client = MlflowClient(f"sqlite:///{project / '.qflow/tracker/mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("by_site")
    found = client.search_runs([experiment.experiment_id], "params.site = 'A'")
    names = sorted(r.info.run_name for r in found)
    assert names == ["1_count_site", f"by_site-{run.id}"]
    step = next(r for r in found if r.info.run_name == "1_count_site")
    assert step.data.params == {"site": "A", "weights": "[1, 2]", "strict": "True"}
    parents = client.search_runs([experiment.experiment_id], "tags.purpose = 'baseline'")
    assert [r.info.run_name for r in parents] == [f"by_site-{run.id}"]


def test_failed_step_ends_its_child_run_failed(project: Path) -> None:
    with pytest.raises(StepFailedError, match="boom"):
        qf.run(tw.broken, {"rows": 20, "tracker": ["filetracker", "mlflow"]}, project_dir=project)
    client = MlflowClient(f"sqlite:///{project / '.qflow/tracker/mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("broken")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    failed = runs["1_explode"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["qflow.status"] == "failed"
    assert "boom" in failed.data.tags["qflow.error"]
    assert failed.data.metrics == {"before_error": 1.0}
    parent = next(r for n, r in runs.items() if n.startswith("broken-"))
    assert parent.info.status == "FAILED"


def test_tracking_server_gets_everything_without_console_noise(
    project: Path, mlflow_server: str, capfd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = {"name": "mlflow", "tracking_uri": mlflow_server}
    caplog.set_level(logging.INFO)
    run = qf.run(tw.train, {**CONFIG, "tracker": tracker}, project_dir=project)
    _check_everything_logged(mlflow_server, run)
    out, err = capfd.readouterr()
    assert "View run" not in out + err and "View experiment" not in out + err
    logged = [r.getMessage() for r in caplog.records if r.name == "qflow.integrations.mlflow"]
    assert any(m.startswith(f"MLflow run of {run.id}: {mlflow_server}/#/") for m in logged)


def test_server_down_warns_once_then_sync_sends_the_run(
    project: Path, mlflow_server: str, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    down = f"http://127.0.0.1:{servers.free_port()}"
    tracker = {"name": "mlflow", "tracking_uri": down}
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    run = qf.run(tw.train, {**CONFIG, "tracker": tracker}, project_dir=project)
    took = time.monotonic() - started
    assert run.status == "succeeded"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert down in message and f"qflow sync {run.id} --tracker mlflow" in message
    assert took < 60
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") is None

    sync = ["sync", run.id[:10], "--tracker", "mlflow", "--tracking-uri", mlflow_server]
    assert run_cli([*sync, "-C", str(project)]) == 0
    assert "3 steps" in capsys.readouterr().out
    _check_everything_logged(mlflow_server, run)

    again = ["sync", run.id, "--tracking-uri", mlflow_server, "-C", str(project)]
    assert run_cli(again) == 0
    assert "already whole in mlflow; nothing sent" in capsys.readouterr().out
    client = MlflowClient(mlflow_server)
    _, children = _runs(client, run.id)
    assert len(children) == 3
    replace = ["sync", run.id, "--tracking-uri", mlflow_server, "--replace", "-C", str(project)]
    assert run_cli(replace) == 0
    assert "replaced 4 runs" in capsys.readouterr().out
    _check_everything_logged(mlflow_server, run)


def _process_group(port: int) -> int:
    """The process group of the server started with ``--port PORT`` (from ``/proc``)."""
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in words and words[words.index(b"--port") + 1] == str(port).encode():
            return os.getpgid(int(entry.name))
    raise LookupError(f"no server with --port {port}")


def test_sync_completes_the_partial_copy_a_real_outage_leaves(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: Any,
) -> None:
    """``mlflow server`` is killed (SIGKILL) inside the run's middle step: the run finishes in
    QFlow, the printed ``qflow sync`` replaces the partial copy once the server is back on the
    same backend store, and MLflow then holds the run once, whole."""
    from mlflow.entities import ViewType

    port = servers.free_port()
    root = tmp_path / "mlflow"
    root.mkdir()
    tracker = {"name": "mlflow", "tracking_uri": f"http://127.0.0.1:{port}"}
    caplog.set_level(logging.WARNING)
    with servers.mlflow_server(root, port):
        monkeypatch.setenv("QFLOW_TEST_KILL_PGID", str(_process_group(port)))
        run = qf.run(ow.outage_run, {"rows": 3, "tracker": tracker}, project_dir=project)
    assert run.status == "succeeded" and run.step("finish").load() == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    command = re.search(r"qflow sync (\S+) --tracker mlflow", warnings[0])
    assert command is not None and command[1] == run.id

    with servers.mlflow_server(root, port) as url:  # back, on the same backend store
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("outage_run").experiment_id
        tagged = f"tags.`qflow.run_id` = '{run.id}'"
        partial = {r.info.run_name: r.info.status for r in client.search_runs([experiment], tagged)}
        assert partial == {
            f"outage_run-{run.id}": "RUNNING",
            "0_prepare": "FINISHED",
            "1_outage": "RUNNING",
        }

        assert run_cli(["sync", run.id, "--tracker", "mlflow", "-C", str(project)]) == 0
        assert "(replaced 3 runs there)" in capsys.readouterr().out
        assert run_cli(["sync", run.id, "--tracker", "mlflow", "-C", str(project)]) == 0
        assert "already whole in mlflow; nothing sent" in capsys.readouterr().out

        found = client.search_runs([experiment], tagged)
        assert sorted(r.info.run_name for r in found) == [
            "0_prepare",
            "1_outage",
            "2_finish",
            f"outage_run-{run.id}",
        ]
        assert {r.info.status for r in found} == {"FINISHED"}
        parent = next(r for r in found if r.data.tags.get("qflow.kind") == "run")
        assert parent.data.tags["qflow.status"] == "succeeded"
        assert parent.data.tags["stage"] == "finished"
        history = client.get_metric_history(parent.info.run_id, "progress")
        assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 2.0), (2, 3.0)]
        trash = client.search_runs([experiment], tagged, run_view_type=ViewType.DELETED_ONLY)
        assert sorted(r.info.run_name for r in trash) == sorted(partial)  # the partial copy


def test_sync_to_a_dead_server_is_one_error_line(project: Path, capsys: Any) -> None:
    run = qf.run(tw.train, CONFIG, project_dir=project)
    down = f"http://127.0.0.1:{servers.free_port()}"
    args = ["sync", run.id, "--tracker", "mlflow", "--tracking-uri", down, "-C", str(project)]
    assert run_cli(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: MLflow tracker at") and down in err
