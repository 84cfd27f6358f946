"""Real pipelines as users port them: Kedro's spaceflights and Metaflow's 02-statistics and
04-playlist-plus (``tests/fixtures/spaceflights.py``, ``movies.py``), driven through the CLI.

Covers partial and cross-run execution (``--from``, ``--from-steps``, ``--to-steps``), a step
reading another run through ``qf.Client()`` (lineage and cache), steps matched across runs by
a stable key (``qflow diff``), ``qflow export``, and the same artifacts on every executor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.web.graphs import run_graph
from tests.fixtures import movies
from tests.fixtures.ports import run_ports, write_project

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ports(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose workflows are the ports, with their data and config files."""
    write_project(project)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    return project


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``qflow run ARGS``; the new run's id."""
    code, _, err = cli(capsys, "run", *args)
    assert code == 0, err
    return run_ids(capsys)[0]


def run_ids(capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, _ = cli(capsys, "runs", "--json", "--limit", "1000")
    assert code == 0
    return [r["id"] for r in json.loads(out)]


def shown(capsys: pytest.CaptureFixture[str], run_id: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "show", run_id, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def _meta(project: Path, run_id: str) -> dict[str, Any]:
    """What the run recorded in its ``meta`` (partial runs: ``inputs_from``)."""
    client = qf.Client(project)
    try:
        return dict(client.run(run_id).record.meta)
    finally:
        client.metadata.dispose()


def steps(capsys: pytest.CaptureFixture[str], run_id: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in shown(capsys, run_id)["steps"]}


# -- partial and cross-run execution ------------------------------------------------------------


def test_data_science_takes_model_input_table_from_a_data_processing_run(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    processing = run(capsys, "data_processing")

    code, _, err = cli(capsys, "run", "data_science")
    assert code == 1
    assert "'model_input_table'" in err and "--from RUN" in err
    assert "Traceback" not in err

    code, out, err = cli(capsys, "run", "data_science", "--from", processing[:12])
    assert code == 0, err
    assert f"Taken from run {processing}: 0_model_input_table" in out
    science = run_ids(capsys)[0]
    recorded = steps(capsys, science)
    assert list(recorded) == [
        "0_model_input_table",
        "1_split_data",
        "2_train_model",
        "3_evaluate_model",
    ]
    table = recorded["0_model_input_table"]
    assert table["status"] == "cached"
    assert processing in table["reason"]
    made = steps(capsys, processing)["5_create_model_input_table"]
    assert table["outputs"]["return"]["key"] == made["outputs"]["return"]["key"]
    assert table["cached_from"] is not None
    assert _meta(ports, science)["inputs_from"] == processing

    # The dashboard traces the run's graph with the parameter it took from the other run.
    reader = qf.Client(ports)
    try:
        graph, source = run_graph(
            reader.metadata.get_run(science), reader.metadata.step_runs(science), ports
        )
    finally:
        reader.metadata.dispose()
    assert source == "traced"
    assert graph.nodes[0].name == "0_model_input_table"

    # qflow lineage leads from the model's score back to the data_processing run.
    code, out, err = cli(capsys, "lineage", science, "3_evaluate_model")
    assert code == 0, err
    assert f"cached from {processing}/5_create_model_input_table" in out
    code, out, err = cli(capsys, "lineage", processing, "5_create_model_input_table", "--forward")
    assert code == 0, err
    assert f"run {science} step 1_split_data" in out

    # The same numbers as Kedro's __default__ pipeline run in one go.
    whole = run(capsys, "spaceflights")
    assert shown(capsys, whole)["metrics"] == shown(capsys, science)["metrics"]
    evaluated = steps(capsys, whole)["8_evaluate_model"]["outputs"]["return"]["key"]
    assert recorded["3_evaluate_model"]["outputs"]["return"]["key"] == evaluated

    # qflow diff pairs the data_science calls with the same calls of the whole pipeline.
    code, out, err = cli(capsys, "diff", science, whole, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["matched"] == {
        "6_split_data": "1_split_data",
        "7_train_model": "2_train_model",
        "8_evaluate_model": "3_evaluate_model",
    }
    assert not [k for k in result["outputs"] if k.startswith(("6_", "7_", "8_"))]


def test_from_steps_and_to_steps_run_part_of_the_workflow(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = run(capsys, "spaceflights")

    tail = run(capsys, "spaceflights", "--from-steps", "train_model", "--no-cache")
    recorded = steps(capsys, tail)
    assert list(recorded) == ["6_split_data", "7_train_model", "8_evaluate_model"]
    assert recorded["6_split_data"]["status"] == "cached"
    assert f"taken from run {whole}" in recorded["6_split_data"]["reason"]
    assert recorded["7_train_model"]["status"] == "succeeded"
    assert recorded["8_evaluate_model"]["status"] == "succeeded"
    assert _meta(ports, tail)["inputs_from"] == whole

    head = run(capsys, "spaceflights", "--from", whole, "--to-steps", "create_model_input_table")
    assert list(steps(capsys, head)) == [f"{i}_{s}" for i, s in enumerate(_PROCESSING)]
    assert "inputs_from" not in _meta(ports, head)

    middle = run(
        capsys,
        *("spaceflights", "--from", whole, "--from-steps", "split_data"),
        *("--to-steps", "7_train_model"),
    )
    recorded = steps(capsys, middle)
    assert list(recorded) == ["5_create_model_input_table", "6_split_data", "7_train_model"]
    assert recorded["5_create_model_input_table"]["status"] == "cached"


_PROCESSING = (
    "load_csv",
    "preprocess_companies",
    "load_csv",
    "preprocess_shuttles",
    "load_csv",
    "create_model_input_table",
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data_science", "--from", "01nosuchrun"), "--from: No run with id '01nosuchrun'"),
        (
            ("spaceflights", "--from-steps", "trian_model"),
            "--from-steps 'trian_model': workflow 'spaceflights' has no such step",
        ),
        (
            ("data_science", "--from", "{movies}"),
            "has no output for parameter 'model_input_table'",
        ),
        (
            ("spaceflights", "--from", "{processing}", "--from-steps", "train_model"),
            "has no finished call of step 'split_data' (6_split_data)",
        ),
        (("data_processing", "--from", "{processing}"), "takes nothing from another run"),
    ],
    ids=["unknown-run", "unknown-step", "run-lacks-output", "run-lacks-step", "nothing-taken"],
)
def test_bad_partial_runs_say_what_and_record_nothing(
    ports: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    processing = run(capsys, "data_processing")
    movie_run = run(capsys, "movie_stats")
    before = run_ids(capsys)
    given = [a.format(processing=processing, movies=movie_run) for a in args]

    code, out, err = cli(capsys, "run", *given)

    assert code == 1, out
    assert message in err
    assert "Hint:" in err
    assert "Traceback" not in err
    assert err.startswith("Error: ")
    assert run_ids(capsys) == before


# -- reading runs inside steps ------------------------------------------------------------------


def test_a_step_reading_the_latest_run_is_linked_to_it_and_cached_by_it(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = run(capsys, "movie_stats")
    first = run(capsys, "playlist_plus")
    reader = steps(capsys, first)["1_latest_genre_stats"]
    joined = steps(capsys, stats)["3_join"]["outputs"]["return"]["key"]
    assert reader["status"] == "succeeded"
    assert reader["inputs"] == {f"{stats}/3_join.return": joined}

    code, out, err = cli(capsys, "lineage", first, "1_latest_genre_stats")
    assert code == 0, err
    assert f"{stats}/3_join.return" in out
    code, out, err = cli(capsys, "lineage", stats, "3_join", "--forward")
    assert code == 0, err
    assert first in out and "1_latest_genre_stats" in out

    # Nothing new upstream: a cache hit, still linked to the run it read.
    again = steps(capsys, run(capsys, "playlist_plus"))["1_latest_genre_stats"]
    assert again["status"] == "cached"
    assert again["inputs"] == reader["inputs"]

    # A new movie_stats run (same data): the reader runs again and reads it; what it read is
    # the same, so the steps after it come from the cache.
    newer = run(capsys, "movie_stats")
    third = steps(capsys, run(capsys, "playlist_plus"))
    assert third["1_latest_genre_stats"]["status"] == "succeeded"
    assert "runs of movie_stats read by the step changed" in third["1_latest_genre_stats"]["reason"]
    assert third["1_latest_genre_stats"]["inputs"] == {f"{newer}/3_join.return": joined}
    assert third["2_genre_movies"]["status"] == "cached"

    fourth = steps(capsys, run(capsys, "playlist_plus"))
    assert fourth["1_latest_genre_stats"]["status"] == "cached"


# -- stable step identity -------------------------------------------------------------------------


def test_diff_compares_reordered_calls_like_with_like(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run(capsys, "data_processing")
    after = run(capsys, "data_processing_swapped")
    by_name_before, by_name_after = steps(capsys, before), steps(capsys, after)
    # Matched by run name, the calls would differ: 0_load_csv read companies, now shuttles.
    assert (
        by_name_before["0_load_csv"]["outputs"]["return"]["key"]
        != by_name_after["0_load_csv"]["outputs"]["return"]["key"]
    )
    assert all(s["status"] == "cached" for s in by_name_after.values())

    code, out, err = cli(capsys, "diff", before, after, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["outputs"] == {}
    assert result["data"] == {}
    assert result["cache"] == {}
    assert result["code"] == {}
    assert result["matched"] == {
        "0_load_csv": "2_load_csv",
        "1_preprocess_shuttles": "3_preprocess_shuttles",
        "2_load_csv": "0_load_csv",
        "3_preprocess_companies": "1_preprocess_companies",
    }

    code, out, err = cli(capsys, "diff", before, after)
    assert code == 0, err
    assert "step 0_load_csv is 2_load_csv in run a" in out
    assert "outputs" not in out


def test_diff_still_pairs_a_step_whose_parameter_changed(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run(capsys, "spaceflights")
    after = run(capsys, "spaceflights", "test_size=0.3")

    code, out, err = cli(capsys, "diff", before, after, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["matched"] == {}
    assert list(result["cache"]) == ["6_split_data", "7_train_model", "8_evaluate_model"]
    assert any("param parameters" in reason for reason in result["cache"]["6_split_data"])
    assert result["code"] == {}


# -- export ---------------------------------------------------------------------------------------


def test_export_writes_outputs_in_their_natural_format(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    processing = run(capsys, "data_processing")
    outputs = run(capsys, "export_outputs")
    out = ports / "out"
    table = qf.Client(ports).run(processing).step("create_model_input_table").load()

    assert (
        cli(capsys, "export", processing, "create_model_input_table", str(out / "t.parquet"))[0]
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_parquet(out / "t.parquet"), table)
    code, _, err = cli(
        capsys, "export", processing, "5_create_model_input_table.return", "out/t.csv"
    )
    assert code == 0, err
    assert "(CSV)" in err
    pd.testing.assert_frame_equal(pd.read_csv(out / "t.csv"), pd.read_csv(out / "t.csv"))
    assert list(pd.read_csv(out / "t.csv").columns) == list(table.columns)

    assert cli(capsys, "export", outputs, "grid", "out/grid.npy")[0] == 0
    assert np.load(out / "grid.npy").tolist() == np.arange(9.0).reshape(3, 3).tolist()
    assert cli(capsys, "export", outputs, "summary", "out/summary.json")[0] == 0
    assert json.loads((out / "summary.json").read_text()) == {"total": 36.0, "shape": [3, 3]}
    assert cli(capsys, "export", outputs, "report", "out/report.txt")[0] == 0
    assert (out / "report.txt").read_text() == "total 36.0\n"
    assert cli(capsys, "export", outputs, "bundle", "out/bundle")[0] == 0
    assert sorted(p.name for p in (out / "bundle" / "rows").iterdir()) == [
        "0.txt",
        "1.txt",
        "2.txt",
    ]
    assert (out / "bundle" / "rows" / "1.txt").read_text() == "3.0 4.0 5.0\n"
    assert cli(capsys, "export", outputs, "column", "out/column.csv")[0] == 0
    assert (out / "column.csv").read_text() == "first\n0.0\n3.0\n6.0\n"

    for args, message in [
        ((outputs, "grid", "out/grid.json"), "an array is written as .npy or .csv"),
        ((outputs, "summary", "out/summary.json"), "already exists"),
        ((outputs, "nosuch", "out/x.json"), "has no step 'nosuch'"),
        (("01nosuchrun", "grid", "out/x.npy"), "No run with id '01nosuchrun'"),
    ]:
        code, _, err = cli(capsys, "export", *args)
        assert code == 1, args
        assert message in err
        assert "Traceback" not in err
    assert not (out / "grid.json").exists()
    code, _, err = cli(capsys, "export", outputs, "summary", "out/summary.json", "--force")
    assert code == 0, err


# -- every executor, the same artifacts ------------------------------------------------------------


def test_ports_give_the_same_artifacts_on_the_parallel_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole runs, a parameter bound to another run's output, a partial run and named calls
    (``tests.fixtures.ports.run_ports``), on the local and the parallel executor; Ray's twin
    is test_pipelines_ray.py."""
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    monkeypatch.delenv("QFLOW_ARTIFACTS", raising=False)
    monkeypatch.syspath_prepend(str(ROOT))
    local = run_ports(tmp_path / "local", "local")
    parallel = run_ports(tmp_path / "parallel", "parallel")
    assert list(parallel) == list(local)
    for label in local:
        assert parallel[label]["outputs"] == local[label]["outputs"], label
        assert parallel[label]["statuses"] == local[label]["statuses"], label
        assert parallel[label]["meta"]["executor"] == "parallel", label
    assert len(local["spaceflights"]["outputs"]) == 12
    assert local["partial"]["statuses"] == {
        "5_create_model_input_table": "cached",
        "6_split_data": "succeeded",
        "7_train_model": "succeeded",
    }
    assert local["data_science"]["statuses"]["0_model_input_table"] == "cached"
    assert set(local["named"]["statuses"]) >= {"strong", "weak", "shifted", "shifted[4]"}


FLAKY = """\
from pathlib import Path

import qflow as qf


@qf.step
def make(n: int) -> list[int]:
    return list(range(n))


@qf.step
def use(xs: list[int]) -> int:
    if Path("fail").exists():
        raise RuntimeError("asked to fail")
    return sum(xs)


@qf.workflow
def produce(n: int = 3):
    return make(n)


@qf.workflow
def consume(make: list[int]):
    return use(make)
"""


def test_resuming_a_partial_run_takes_the_same_inputs_again(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "flaky"\n[tool.qflow]\nworkflow-modules = ["flaky"]\n'
    )
    (project / "flaky.py").write_text(FLAKY)
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    produced = run(capsys, "produce")
    (project / "fail").write_text("")
    code, _, err = cli(capsys, "run", "consume", "--from", produced)
    assert code == 1
    assert "asked to fail" in err
    failed = run_ids(capsys)[0]

    (project / "fail").unlink()
    code, _, err = cli(capsys, "resume", failed)
    assert code == 0, err
    resumed = run_ids(capsys)[0]
    recorded = steps(capsys, resumed)
    assert recorded["0_make"]["status"] == "cached"
    assert produced in recorded["0_make"]["reason"]
    assert recorded["1_use"]["status"] == "succeeded"
    assert _meta(project, resumed)["inputs_from"] == produced


def test_a_script_run_by_qflow_exec_reads_runs_through_the_client(
    ports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = run(capsys, "movie_stats")
    (ports / "peek.py").write_text(
        "import qflow as qf\n"
        "run = qf.Client().runs('movie_stats', limit=1)[0]\n"
        "print(sorted(run.step('join').load()))\n"
    )
    code, out, err = cli(capsys, "exec", "peek.py")
    assert code == 0, err
    assert str(sorted(movies.GENRES)) in out
    assert stats in run_ids(capsys)


READER = """\
import qflow as qf


@qf.step
def make(n: int) -> list[int]:
    return list(range(n))


@qf.workflow
def produce(n: int = 3):
    return make(n)


@qf.step
def newest() -> list[int]:
    found = qf.Client().runs("produce", filter="status = 'succeeded'", limit=1)
    return found[0].step("make").load()


@qf.workflow
def read_newest():
    return newest()
"""


def test_a_filtered_query_of_runs_inside_a_step_is_checked_again_on_a_hit(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "reader"\n[tool.qflow]\nworkflow-modules = ["reader"]\n'
    )
    (project / "reader.py").write_text(READER)
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    run(capsys, "produce")
    first = steps(capsys, run(capsys, "read_newest"))["0_newest"]
    assert first["status"] == "succeeded"
    assert steps(capsys, run(capsys, "read_newest"))["0_newest"]["status"] == "cached"

    newer = run(capsys, "produce", "n=4")
    reader = run(capsys, "read_newest")
    again = steps(capsys, reader)["0_newest"]
    assert again["status"] == "succeeded"
    assert again["reason"] == f"runs of produce read by the step changed (latest now {newer})"
    assert list(again["inputs"]) == [f"{newer}/0_make.return"]
    client = qf.Client(project)
    try:
        assert client.run(reader).step("newest").load() == [0, 1, 2, 3]
    finally:
        client.metadata.dispose()

    # The step's code and the runs it reads both change: the reason names both.
    (project / "reader.py").write_text(READER.replace("limit=1)", "limit=1)[:1]"))
    latest = run(capsys, "produce", "n=5")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("qflow")), "run", "read_newest"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    why = steps(capsys, run_ids(capsys)[0])["0_newest"]["reason"]
    assert "the step's code changed" in why
    assert f"runs of produce read by the step changed (latest now {latest})" in why
