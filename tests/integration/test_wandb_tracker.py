"""The W&B tracker in offline mode, checked by reading the offline run files back."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from tests.fixtures import tracker_workflows as tw

pytestmark = pytest.mark.integration
pytest.importorskip("wandb")

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> list[Any]:
    """The protobuf records of a ``.wandb`` file (a LevelDB-style log: 32 KiB blocks of
    chunks with a 7-byte header: crc32, length, type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        if _BLOCK - position % _BLOCK < 7:
            position += _BLOCK - position % _BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(pending + chunk)
            records.append(record)
            pending = b""
        elif kind in (_FIRST, _MIDDLE):
            pending += chunk
    return records


def _offline_runs(folder: Path) -> dict[str, dict[str, Any]]:
    """Each offline run by name: group, job type, config, history rows, summary, exit code."""
    import wandb

    wandb.teardown()  # waits for the W&B service to write everything out
    runs = {}
    for path in folder.glob("wandb/offline-run-*/run-*.wandb"):
        run: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "tags": []}
        for record in _records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(
                    name=record.run.display_name,
                    group=record.run.run_group,
                    job_type=record.run.job_type,
                    project=record.run.project,
                )
                run["tags"] = list(record.run.tags)
                run["config"].update(
                    {i.key: json.loads(i.value_json) for i in record.run.config.update}
                )
            elif kind == "config":
                run["config"].update(
                    {i.key: json.loads(i.value_json) for i in record.config.update}
                )
            elif kind == "history":
                row = {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
                run["history"].append(row)
            elif kind == "summary":
                for item in record.summary.update:
                    key = item.key or "/".join(item.nested_key)
                    run["summary"][key] = json.loads(item.value_json)
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
        runs[run["name"]] = run
    return runs


def test_offline_run_is_a_group_with_one_wandb_run_per_step(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = {"rows": 150, "C": 0.5, "tracker": "wandb"}
    run = qf.run(tw.train, config, project_dir=project, tags={"purpose": "baseline"})
    runs = _offline_runs(project / ".qflow" / "tracker" / "wandb")
    group = f"train-{run.id}"
    assert sorted(runs) == sorted(["0_load_data", "1_fit", "2_evaluate", group])
    assert {r["group"] for r in runs.values()} == {group}
    assert {r["project"] for r in runs.values()} == {"train"}
    workflow = runs[group]
    assert workflow["job_type"] == "workflow"
    assert workflow["config"]["rows"] == 150 and workflow["config"]["C"] == 0.5
    assert workflow["summary"]["qflow_status"] == "succeeded"
    assert "stage:evaluated" in workflow["tags"] and "purpose:baseline" in workflow["tags"]
    fit = runs["1_fit"]
    assert fit["job_type"] == "fit" and fit["exit_code"] == 0
    assert fit["config"]["C"] == 0.5 and fit["config"]["n_features"] == 4
    losses = [(row["qflow_step"], row["loss"]) for row in fit["history"] if "loss" in row]
    assert losses == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert fit["summary"]["qflow_status"] == "succeeded"
    assert fit["summary"]["qflow_cache_hit"] is False
    evaluate = runs["2_evaluate"]
    assert evaluate["summary"]["accuracy"] == run.step("evaluate").load()
    assert evaluate["summary"]["curves/accuracy.png/_type"] == "image-file"
    media = evaluate["summary"]["curves/accuracy.png/path"]
    files = list((project / ".qflow/tracker/wandb/wandb").glob(f"offline-run-*/files/{media}"))
    assert len(files) == 1 and files[0].read_bytes()[:4] == b"\x89PNG"


def test_failed_step_exits_nonzero(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = {"name": "wandb", "dir": "wb"}
    with pytest.raises(qf.QFlowError, match="boom"):
        qf.run(tw.broken, {"rows": 10, "tracker": tracker}, project_dir=project)
    runs = _offline_runs(project / "wb")
    assert runs["1_explode"]["exit_code"] == 1
    assert runs["1_explode"]["summary"]["qflow_status"] == "failed"
    assert runs["1_explode"]["summary"]["before_error"] == 1.0


def test_step_params_keep_their_types(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = {"rows": 30, "C": 0.5, "site": "A", "tracker": "wandb"}
    qf.run(tw.by_site, config, project_dir=project)
    step = _offline_runs(project / ".qflow" / "tracker" / "wandb")["1_count_site"]
    assert step["config"]["site"] == "A"
    assert step["config"]["weights"] == [1, 2] and step["config"]["strict"] is True


def test_sync_twice_never_duplicates(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from qflow.cli.app import run_cli

    monkeypatch.setenv("WANDB_MODE", "offline")
    run = qf.run(tw.train, {"rows": 150, "C": 0.5}, project_dir=project)
    folder = project / ".qflow" / "tracker" / "wandb"
    sync = ["sync", run.id, "--tracker", "wandb", "-C", str(project)]
    assert run_cli(sync) == 0
    assert "Synced run" in capsys.readouterr().out
    first = _offline_runs(folder)
    assert len(first) == 4
    assert run_cli(sync) == 0
    assert "already whole in wandb; nothing sent" in capsys.readouterr().out
    assert len(list(folder.glob("wandb/offline-run-*"))) == 4
    assert run_cli([*sync, "--replace"]) == 0
    assert "replaced 4 runs" in capsys.readouterr().out
    again = _offline_runs(folder)
    assert sorted(again) == sorted(first) and len(list(folder.glob("wandb/offline-run-*"))) == 4
    assert again["1_fit"]["summary"]["qflow_status"] == "succeeded"


def test_settings_error_is_shown_whole(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """W&B's settings errors name the bad field on a later line; the warning keeps them."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_X_STATS_SAMPLING_INTERVAL", "not-a-number")
    run = qf.run(tw.train, {"rows": 150, "C": 0.5, "tracker": "wandb"}, project_dir=project)
    assert run.status == "succeeded"
    warnings = [r.getMessage() for r in caplog.records if r.name == "qflow.trackers"]
    assert len(warnings) == 1
    assert "x_stats_sampling_interval" in warnings[0] and "\n" in warnings[0]
