from __future__ import annotations

import json
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import ArtifactNotFoundError
from qflow.provenance import diff, lineage
from qflow.provenance.script import exec_script
from qflow.store import open_stores


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = run_cli(list(args))
    return code, capsys.readouterr().out


def test_backward_lineage_tree_json_and_mermaid(
    wf_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = qf.run("pipeline", {"n": 3, "scale": 2.0}, project_dir=wf_project)
    metadata, _ = open_stores(wf_project)
    tree = lineage.backward(metadata, run.id[:10], "score")
    root = tree["artifact"]
    assert root["name"] == "1_score.return"
    assert root["key"] == run.step("score").outputs["return"].key
    score = root["produced_by"]
    assert score["step"] == "1_score" and score["params"] == {"scale": "2.0"}
    (make_out,) = score["inputs"]
    assert make_out["name"] == "0_make.return"
    assert make_out["produced_by"]["step"] == "0_make"
    assert make_out["produced_by"]["params"] == {"n": "3"}

    code, out = _cli(capsys, "lineage", run.id, "1_score.return", "--json")
    assert code == 0 and json.loads(out) == json.loads(json.dumps(tree))
    code, out = _cli(capsys, "lineage", run.id, "score")
    assert code == 0 and "1_score" in out and "0_make" in out and "n=3" in out
    code, out = _cli(capsys, "lineage", run.id, "score", "--mermaid")
    assert out.startswith("flowchart LR") and "-->" in out and "0_make" in out
    with pytest.raises(ArtifactNotFoundError, match="has no output 'nope'"):
        lineage.backward(metadata, run.id, "score.nope")


def test_forward_lineage_finds_every_run_that_used_an_artifact(wf_project: Path) -> None:
    first = qf.run("pipeline", {"n": 3, "scale": 1.0}, project_dir=wf_project)
    second = qf.run("pipeline", {"n": 3, "scale": 5.0}, project_dir=wf_project)
    assert second.step("make").status == "cached"
    metadata, _ = open_stores(wf_project)
    used = lineage.forward(metadata, run_id=first.id, target="0_make")
    users = {(u["run_id"], u["step"]) for u in used["used_by"]}
    assert users == {(first.id, "1_score"), (second.id, "1_score")}
    mermaid = lineage.to_mermaid(used)
    assert mermaid.count("1_score") == 2


def test_forward_lineage_of_a_data_file_read_by_a_script(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    (project / "data.txt").write_text("42")
    (project / "read.py").write_text("open('data.txt').read()\n")
    run = exec_script("read.py", project_dir=project)
    metadata, _ = open_stores(project)
    found = lineage.forward(metadata, data="data.txt")
    assert found["data_file"]["path"] == "data.txt"
    assert [(u["run_id"], u["step"]) for u in found["used_by"]] == [(run.run_id, "0_main")]
    with pytest.raises(ArtifactNotFoundError, match="No step read a data file"):
        lineage.forward(metadata, data="nothing.csv")


def test_diff_of_two_runs_config_metrics_outputs_and_packages(
    wf_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = qf.run("pipeline", {"n": 3, "scale": 1.0}, project_dir=wf_project)
    b = qf.run("pipeline", {"n": 3, "scale": 2.0}, project_dir=wf_project)
    metadata, _ = open_stores(wf_project)
    result = diff.diff_runs(metadata, a.id, b.id)
    assert result["config"] == {"scale": [1.0, 2.0]}
    assert result["metrics"]["score"] == {
        "a": 3.0,
        "b": 6.0,
        "delta": 3.0,
        "relative": 1.0,
        "same": False,
    }
    assert list(result["outputs"]) == ["1_score.return"]
    assert result["environment"] == {} and result["data"] == {}

    # a run made elsewhere, with other packages
    metadata.save_environment("f" * 64, {"fakepkg-xyz": "1.0", "sqlalchemy": "0.1"})
    other = metadata.create_run(
        workflow="pipeline", config={"n": 3}, meta={**a.meta, "packages_hash": "f" * 64}
    )
    env = diff.diff_runs(metadata, a.id, other.id)["environment"]
    packages = env["packages"]
    assert packages["added"] == {"fakepkg-xyz": "1.0"}
    assert packages["changed"]["sqlalchemy"][1] == "0.1"
    assert "typer" in packages["removed"]

    code, out = _cli(capsys, "diff", a.id, b.id)
    assert code == 0
    assert "scale: 1.0 → 2.0" in out and "score: 3.0 → 6.0  Δ +3 (+100.0%)" in out
    code, out = _cli(capsys, "diff", a.id, other.id, "--json")
    assert json.loads(out)["environment"]["packages"]["added"] == {"fakepkg-xyz": "1.0"}
    code, out = _cli(capsys, "compare", a.id, b.id, other.id, "--json")
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    assert rows["config.scale"]["values"] == [1.0, 2.0, None]
    assert rows["metrics.score"]["values"] == [3.0, 6.0, None]
    code, out = _cli(capsys, "compare", a.id, b.id)
    assert code == 0 and "config.scale" in out and "config.n" not in out


def test_diff_of_two_script_runs_shows_the_code_change(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    script = project / "fit.py"
    script.write_text("import qflow as qf\nqf.log_metric('acc', 0.5)\n")
    a = exec_script("fit.py", project_dir=project)
    script.write_text("import qflow as qf\nqf.log_metric('acc', 0.75)\n")
    b = exec_script("fit.py", ["--more"], project_dir=project)
    metadata, _ = open_stores(project)
    result = diff.diff_runs(metadata, a.run_id, b.run_id)
    code_diff = result["code"]["0_main"]["diff"]
    assert "-qf.log_metric('acc', 0.5)" in code_diff
    assert "+qf.log_metric('acc', 0.75)" in code_diff
    assert result["config"] == {"args": [[], ["--more"]]}
    assert result["environment"]["snapshot"][0] != result["environment"]["snapshot"][1]
    _, out = _cli(capsys, "diff", a.run_id, b.run_id)
    assert "+qf.log_metric('acc', 0.75)" in out and "acc: 0.5 → 0.75" in out


def _version_one() -> qf.Workflow:  # type: ignore[name-defined]
    @qf.step(name="score")
    def score(n: int) -> int:
        return n + 1

    @qf.workflow(name="versions")
    def versions(n: int = 1) -> object:
        return score(n)

    return versions


def _version_two() -> qf.Workflow:  # type: ignore[name-defined]
    @qf.step(name="score")
    def score(n: int) -> int:
        return n + 2

    @qf.workflow(name="versions")
    def versions(n: int = 1) -> object:
        return score(n)

    return versions


def test_diff_of_workflow_runs_shows_changed_step_code(project: Path) -> None:
    a = qf.run(_version_one(), {"n": 1}, project_dir=project)
    b = qf.run(_version_two(), {"n": 1}, project_dir=project)
    if a.steps[0].source_key is None:
        pytest.skip("the scheduler does not pass source= to create_step_run yet")
    metadata, _ = open_stores(project)
    change = diff.diff_runs(metadata, a.id, b.id)["code"]["0_score"]
    assert "-        return n + 1" in change["diff"] and "+        return n + 2" in change["diff"]


def test_changed_values_compare_types_as_the_cache_key_does() -> None:
    a = {"C": 1, "flag": 1, "same": 0.5, "nan": float("nan")}
    b = {"C": 1.0, "flag": True, "same": 0.5, "nan": float("nan")}
    assert diff.changed_values(a, b) == {"C": [1, 1.0], "flag": [1, True]}
