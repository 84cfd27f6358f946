from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.errors import StepFailedError
from qflow.plugins import hookimpl
from tests.fixtures import workflows as wf


def _blobs(project: Path) -> set[str]:
    root = project / ".qflow" / "artifacts"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_linear_run_records_steps_outputs_metrics_and_stdout(project: Path) -> None:
    run = qf.run(wf.linear, {"n": 4}, project_dir=project)
    assert run.status == "succeeded"
    assert [s.name for s in run.steps] == ["0_load", "1_double", "2_total"]
    assert all(s.status == "succeeded" for s in run.steps)
    assert run.step("total").load() == 12
    assert run.step("1_double").load() == [0, 2, 4, 6]
    assert run.step("0_load").stdout == "loading 4\n"
    assert run.metrics_summary == {"total": 12.0}
    history = run.metric_history("total")
    assert [(m.key, m.value) for m in history] == [("total", 12.0)]
    load = run.step("0_load")
    assert load.params == {"n": "4"}
    assert run.step("1_double").inputs["xs"].key == load.outputs["return"].key
    assert run.config == {"n": 4}
    assert (project / ".qflow" / "qflow.db").is_file()


def test_small_outputs_live_in_the_metadata_store_and_big_ones_in_files(project: Path) -> None:
    np = pytest.importorskip("numpy")

    @qf.step
    def make(n: int) -> Any:
        return np.arange(n, dtype=np.float64)

    @qf.workflow
    def sizes() -> Any:
        return make(10), make(100_000)

    run = qf.run(sizes, {}, project_dir=project)
    small, big = (s.outputs["return"] for s in run.steps)
    assert small.inline is not None and small.size == len(small.inline)
    assert big.inline is None
    assert _blobs(project) == {big.key}
    assert run.step("0_make").load().tolist() == list(range(10))
    assert float(run.step("1_make").load().sum()) == sum(range(100_000))


def test_diamond_with_class_step_and_structured_inputs(project: Path) -> None:
    run = qf.run(wf.diamond, {"n": 3, "factor": 0.5}, project_dir=project)
    # total([0,2,4]) + total([0, .5, 1]) + total([0,1,2]) + 1
    assert run.step("6_combine").load() == 6 + 1.5 + 4
    assert run.step("2_Scale").load() == [0.0, 0.5, 1.0]


def test_multiple_outputs_are_stored_separately(project: Path) -> None:
    run = qf.run(wf.multi, {"n": 6}, project_dir=project)
    halves = run.step("1_halves")
    assert halves.load("0") == [0, 1, 2]
    assert halves.load("1") == [3, 4, 5]
    assert run.step("2_bounds").load("high") == 5
    with pytest.raises(qf.QFlowError, match="has outputs 0, 1; say which one"):
        halves.load()


def test_rerun_is_served_from_cache(project: Path) -> None:
    first = qf.run(wf.linear, {"n": 4}, project_dir=project)
    second = qf.run(wf.linear, {"n": 4}, project_dir=project)
    assert [s.status for s in second.steps] == ["cached"] * 3
    assert second.step("total").cached_from == first.step("total").id
    assert second.step("total").load() == 12
    assert second.metrics_summary == {"total": 12.0}


def test_changed_param_reruns_only_affected_steps(project: Path) -> None:
    qf.run(wf.diamond, {"n": 3, "factor": 0.5}, project_dir=project)
    again = qf.run(wf.diamond, {"n": 3, "factor": 2.0}, project_dir=project)
    status = {s.name: s.status for s in again.steps}
    assert status == {
        "0_load": "cached",
        "1_double": "cached",
        "2_Scale": "succeeded",
        "3_total": "cached",
        "4_total": "succeeded",
        "5_total": "cached",
        "6_combine": "succeeded",
    }


def test_no_cache_and_rerun_controls(project: Path) -> None:
    qf.run(wf.linear, {"n": 2}, project_dir=project)
    fresh = qf.run(wf.linear, {"n": 2}, project_dir=project, use_cache=False)
    assert [s.status for s in fresh.steps] == ["succeeded"] * 3
    partial = qf.run(wf.linear, {"n": 2}, project_dir=project, rerun=["double"])
    assert [s.status for s in partial.steps] == ["cached", "succeeded", "cached"]


def test_step_error_fails_the_run_and_keeps_what_was_logged(project: Path) -> None:
    with pytest.raises(StepFailedError, match=r"step 3_explode raised ValueError: boom") as info:
        qf.run(wf.failing, {"n": 3}, project_dir=project)
    run = qf.Client(project).run(info.value.run_id)
    assert run.status == "failed"
    status = {s.name: s.status for s in run.steps}
    assert status == {
        "0_load": "succeeded",
        "1_total": "succeeded",
        "2_double": "succeeded",
        "3_explode": "failed",
    }
    broken = next(s for s in run.steps if s.status == "failed")
    assert "ValueError: boom" in broken.traceback
    assert broken.stdout == "about to fail\n"
    assert [m.value for m in run.metric_history("before_error")] == [1.5]
    assert run.step("0_load").load() == [0, 1, 2]
    assert "boom" in run.error


def test_downstream_of_a_failure_is_skipped_and_independent_branches_run(project: Path) -> None:
    @qf.workflow
    def branches() -> Any:
        broken = wf.explode(wf.load(2))
        return wf.total([broken]), wf.total(wf.load(3))

    with pytest.raises(StepFailedError) as info:
        qf.run(branches, {}, project_dir=project)
    status = {s.name: s.status for s in qf.Client(project).run(info.value.run_id).steps}
    assert status == {
        "0_load": "succeeded",
        "1_explode": "failed",
        "2_total": "skipped",
        "3_load": "succeeded",
        "4_total": "succeeded",
    }


@qf.step
def returns_lambda(xs: list[int]) -> Any:
    return lambda: xs


@qf.step
def returns_lock() -> Any:
    return threading.Lock()


@qf.step
def returns_open_file() -> Any:
    return open(__file__)  # an open file is what this step must fail to store


@pytest.mark.parametrize(
    ("step", "type_name"),
    [(returns_lambda, "function"), (returns_lock, "lock"), (returns_open_file, "TextIOWrapper")],
    ids=["lambda", "lock", "open-file"],
)
def test_unserializable_output_fails_the_step_without_partial_blob(
    project: Path, step: Any, type_name: str
) -> None:
    @qf.workflow
    def bad() -> Any:
        xs = wf.load(3)
        return step(xs) if step is returns_lambda else (xs, step())

    with pytest.raises(StepFailedError, match=rf"of type '{type_name}' cannot be stored") as info:
        qf.run(bad, {}, project_dir=project)
    run = qf.Client(project).run(info.value.run_id)
    assert run.step("0_load").load() == [0, 1, 2]
    failed = next(s for s in run.steps if s.status == "failed")
    assert failed.outputs == {}
    assert _blobs(project) <= {run.step("0_load").outputs["return"].key}
    artifacts = project / ".qflow" / "artifacts"
    leftovers = [p for p in artifacts.rglob("*") if p.is_file() and ".tmp" in p.parts]
    assert leftovers == []


@qf.step
def special_metrics() -> int:
    for value in (math.nan, math.inf, -math.inf, -0.0, 1e308):
        qf.log_metric("odd", value)
    qf.log_metric("named ünïcode ✓", 1.0)
    return 0


def test_special_metric_values_round_trip(project: Path) -> None:
    @qf.workflow
    def metrics() -> Any:
        return special_metrics()

    run = qf.run(metrics, {}, project_dir=project)
    values = [m.value for m in run.metric_history("odd")]
    assert math.isnan(values[0])
    assert values[1:3] == [math.inf, -math.inf]
    assert values[3] == 0.0 and math.copysign(1.0, values[3]) == -1.0
    assert values[4] == 1e308
    assert run.metric_history("named ünïcode ✓")[0].value == 1.0


@qf.step
def text_metric() -> int:
    qf.log_metric("accuracy", "high")  # type: ignore[arg-type]
    return 0


def test_non_numeric_metric_is_refused_naming_the_key(project: Path) -> None:
    @qf.workflow
    def textual() -> Any:
        return text_metric()

    with pytest.raises(StepFailedError, match=r"Metric 'accuracy' got 'high'"):
        qf.run(textual, {}, project_dir=project)


@qf.step
def logs_things(folder: str) -> int:
    path = Path(folder) / "report.txt"
    path.write_text("hello")
    qf.log_artifact(path)
    qf.log_artifact(path, name="reports/final.txt")
    qf.log_params({"lr": 0.1, "layers": [1, 2]})
    qf.set_tag("team", "vision")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure()
    plt.plot([1, 2, 3])
    qf.log_figure(figure, "plots/line")
    plt.close(figure)
    return 1


def test_params_tags_artifacts_and_figures(project: Path, tmp_path: Path) -> None:
    @qf.workflow
    def logging_wf(folder: str) -> Any:
        return logs_things(folder)

    run = qf.run(logging_wf, {"folder": str(tmp_path)}, project_dir=project)
    assert run.tags == {"team": "vision"}
    assert run.params == {"lr": 0.1, "layers": [1, 2]}
    names = {a.name: a for a in run.artifacts}
    assert set(names) == {"report.txt", "reports/final.txt", "plots/line.png"}
    stored = Path(qf.Client(project).artifacts.local_path(names["report.txt"].ref.key))
    assert stored.read_text() == "hello"
    png = qf.Client(project).artifacts.local_path(names["plots/line.png"].ref.key)
    assert Path(png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "name",
    ["../../x", "/etc/passwd", "%2e%2e/%2e%2e/x", "a\x00b", "ok/../../x"],
    ids=["dotdot", "absolute", "encoded", "nul", "nested-dotdot"],
)
def test_artifact_names_never_escape_the_store(project: Path, tmp_path: Path, name: str) -> None:
    source = tmp_path / "file.txt"
    source.write_text("x")

    @qf.step
    def sneaky() -> int:
        qf.log_artifact(source, name=name)
        return 0

    @qf.workflow
    def escape() -> Any:
        return sneaky()

    with pytest.raises(StepFailedError, match="artifact name"):
        qf.run(escape, {}, project_dir=project)
    assert not (tmp_path / "x").exists()
    assert not list(project.parent.glob("x"))


@pytest.mark.parametrize(
    ("key", "message"),
    [("bad\nkey", "control"), ("x" * 300, "300 characters"), ("", "empty")],
    ids=["control", "long", "empty"],
)
def test_bad_param_names_are_refused(key: str, message: str) -> None:
    with pytest.raises(qf.QFlowError, match=message):
        qf.log_param(key, 1)


def test_log_calls_outside_a_run_only_validate() -> None:
    qf.log_metric("fine", 1.0)
    with pytest.raises(qf.QFlowError, match="must be real numbers"):
        qf.log_metric("bad", None)  # type: ignore[arg-type]


class RecordingPlugin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def before_run(self, run_id: str, workflow: str, graph: Any, config: Any) -> None:
        self.calls.append(("before_run", workflow))

    @hookimpl
    def before_step(self, run_id: str, node: Any) -> None:
        self.calls.append(("before_step", node.name))

    @hookimpl
    def after_step(
        self, run_id: str, node: Any, status: str, duration: float, error: str | None
    ) -> None:
        self.calls.append(("after_step", f"{node.name}:{status}"))

    @hookimpl
    def on_metrics(self, run_id: str, step: str | None, rows: Any) -> None:
        self.calls.append(("on_metrics", f"{step}:{len(rows)}"))

    @hookimpl
    def after_run(self, run_id: str, status: str, error: str | None) -> None:
        self.calls.append(("after_run", status))


def test_hooks_are_called_in_order(project: Path) -> None:
    plugin = RecordingPlugin()
    qf.run(wf.linear, {"n": 2}, project_dir=project, plugins=[plugin])
    assert plugin.calls == [
        ("before_run", "linear"),
        ("before_step", "0_load"),
        ("after_step", "0_load:succeeded"),
        ("before_step", "1_double"),
        ("after_step", "1_double:succeeded"),
        ("before_step", "2_total"),
        ("on_metrics", "2_total:1"),
        ("after_step", "2_total:succeeded"),
        ("after_run", "succeeded"),
    ]


class BrokenPlugin:
    @hookimpl
    def after_step(
        self, run_id: str, node: Any, status: str, duration: float, error: str | None
    ) -> None:
        raise RuntimeError("tracker down")


def test_failing_plugin_never_fails_the_run(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = qf.run(wf.linear, {"n": 2}, project_dir=project, plugins=[BrokenPlugin()])
    assert run.status == "succeeded"
    warnings = [r for r in caplog.records if "tracker down" in r.getMessage()]
    assert len(warnings) == 1


def test_plugin_class_instead_of_instance_is_refused(project: Path) -> None:
    with pytest.raises(qf.QFlowError, match=r"forgotten the `\(\)`"):
        qf.run(wf.linear, {"n": 2}, project_dir=project, plugins=[RecordingPlugin])


_attempts: list[int] = []


@qf.step(retries=2, cache=False)
def flaky() -> int:
    _attempts.append(1)
    if len(_attempts) < 2:
        raise ConnectionError("try again")
    return len(_attempts)


def test_retries_record_attempts(project: Path) -> None:
    _attempts.clear()

    @qf.workflow
    def retrying() -> Any:
        return flaky()

    run = qf.run(retrying, {}, project_dir=project)
    assert run.step("flaky").attempts == 2
    assert run.step("flaky").load() == 2
    assert "attempt 1 failed: ConnectionError: try again" in run.step("flaky").stderr


@qf.step
def calls_another(xs: list[int]) -> list[int]:
    return wf.double(xs)


def test_step_calling_a_step_at_run_time_fails_clearly(project: Path) -> None:
    @qf.workflow
    def nested() -> Any:
        return calls_another(wf.load(2))

    with pytest.raises(StepFailedError, match="inside running step '1_calls_another'"):
        qf.run(nested, {}, project_dir=project)


def test_plain_progress_lines(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qflow.runtime.progress import PlainProgress

    qf.run(wf.linear, {"n": 2}, project_dir=project, plugins=[PlainProgress()])
    err = capsys.readouterr().err
    assert "linear: 3 steps" in err
    assert "0_load succeeded in" in err
    assert "succeeded" in err.splitlines()[-1]


def test_rich_progress_renders_every_step(project: Path) -> None:
    import io

    from rich.console import Console

    from qflow.runtime.progress import RichProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    qf.run(wf.linear, {"n": 2}, project_dir=project, plugins=[RichProgress(console)])
    text = buffer.getvalue()
    for name in ("linear", "0_load", "1_double", "2_total", "succeeded", "3/3"):
        assert name in text


@pytest.mark.postgres
def test_run_into_postgresql(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QFLOW_STORE", postgres_url)
    run = qf.run(wf.linear, {"n": 3}, project_dir=project)
    assert run.status == "succeeded"
    assert not (project / ".qflow" / "qflow.db").exists()
    again = qf.Client(project).run(run.id)
    assert again.step("total").load() == 6
    assert [s.status for s in qf.run(wf.linear, {"n": 3}, project_dir=project).steps] == [
        "cached"
    ] * 3


def test_client_tables_and_histories_to_pandas(project: Path) -> None:
    qf.run(wf.linear, {"n": 3}, project_dir=project, tags={"team": "a"})
    qf.run(wf.linear, {"n": 4}, project_dir=project)
    client = qf.Client(project)
    frame = client.runs("linear").to_pandas()
    assert list(frame["config.n"]) == [4, 3]
    assert list(frame["metrics.total"]) == [12.0, 6.0]
    assert frame["tags.team"].tolist()[1] == "a"
    assert set(frame["status"]) == {"succeeded"}
    history = client.runs("linear")[0].metric_history("total").to_pandas()
    assert history[["key", "value"]].values.tolist() == [["total", 12.0]]
    assert client.workflows() == ["linear"]
