"""Tuples of JSON-able values are stored as JSON (not pickle) and load back as tuples; outputs a
previous release stored as pickle still load and still serve cache hits; a bare ``-> tuple``
annotation that is unpacked or indexed says how to declare several outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import HandleMisuseError
from qflow.store import serializers
from qflow.store.serializers import JsonSerializer


@qf.step
def pair(prefix: str) -> tuple:  # type: ignore[type-arg]
    return (f"{prefix}-train", f"{prefix}-test")


@qf.step
def nested(n: int) -> dict[str, Any]:
    return {"shape": (n, 2), "rows": [(1, "a"), [2, (3,)]], "__qflow_json__": 1}


@qf.step
def describe(value: Any) -> str:
    return type(value).__name__


@qf.workflow
def tuples(prefix: str = "x", n: int = 3) -> Any:
    return describe(pair(prefix)), describe(nested(n))


def test_tuples_are_stored_as_json_and_load_as_tuples(project: Path) -> None:
    run = qf.run(tuples, {}, project_dir=project)
    ref = run.step("0_pair").outputs["return"]
    assert (ref.serializer, ref.pickled) == ("json", False)
    assert run.step("0_pair").load() == ("x-train", "x-test")
    assert type(run.step("0_pair").load()) is tuple
    assert run.step("1_describe").load() == "tuple"  # the downstream step received a tuple
    value = run.step("2_nested").load()
    assert value == {"shape": (3, 2), "rows": [(1, "a"), [2, (3,)]], "__qflow_json__": 1}
    assert type(value["shape"]) is tuple and type(value["rows"][1][1]) is tuple
    assert run.step("2_nested").outputs["return"].serializer == "json"


def test_tuples_stored_as_pickle_by_an_earlier_release_still_load_and_hit(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as earlier:  # the previous release: tuples went to pickle
        earlier.setattr(JsonSerializer, "matches", lambda self, v: serializers._is_json(v))
        first = qf.run(tuples, {}, project_dir=project)
    assert first.step("0_pair").outputs["return"].serializer == "pickle"
    again = qf.run(tuples, {}, project_dir=project)
    assert again.step("0_pair").status == "cached"
    assert again.step("0_pair").load() == ("x-train", "x-test")
    assert type(again.step("0_pair").load()) is tuple
    assert again.step("1_describe").load() == "tuple"


def test_plain_json_written_before_reads_the_same() -> None:
    import io

    json = JsonSerializer()
    for old in (b'[1,"a",[2]]', b'{"a":{"b":[1,2]},"value":3}', b'"text"', b"null"):
        sink = io.BytesIO()
        json.dump(json.load(io.BytesIO(old)), sink)
        assert sink.getvalue() == old  # values without tuples: the same bytes, the same key


FLOWS = """
import qflow as qf


@qf.step
def split_data(n: int) -> tuple:
    return list(range(n)), list(range(n, 2 * n))


@qf.step
def fit(x: list, y: list) -> int:
    return len(x) + len(y)


@qf.workflow
def unpacked(n: int = 3):
    x_train, x_test = split_data(n)
    return fit(x_train, x_test)


@qf.workflow
def indexed(n: int = 3):
    parts = split_data(n)
    return fit(parts[0], parts[1])
"""


def test_a_bare_tuple_annotation_points_to_tuple_types_or_outputs(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text('[tool.qflow]\nworkflow-modules = ["tupflows"]\n')
    (project / "tupflows.py").write_text(FLOWS)
    monkeypatch.chdir(project)
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.syspath_prepend(str(project))
    try:
        for workflow in ("unpacked", "indexed"):
            assert run_cli(["run", workflow]) == 1
            err = " ".join(capsys.readouterr().err.split())
            assert "Step 'split_data' is annotated -> tuple, which declares one output" in err
            assert "-> tuple[T, T]" in err and '@qf.step(outputs=("out0", "out1"))' in err
            assert "tupflows.py" in err and "Traceback" not in err
        import tupflows  # type: ignore[import-not-found]

        with pytest.raises(HandleMisuseError, match=r"annotated -> tuple"):
            tupflows.unpacked.trace({})
    finally:
        sys.modules.pop("tupflows", None)


def test_the_dashboard_previews_a_tuple_output_as_plain_json(project: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from qflow.web.app import Settings, create_app

    run = qf.run(tuples, {}, project_dir=project)
    token = "test-token-0123456789"
    settings = Settings(
        store_url=f"sqlite:///{project / '.qflow' / 'qflow.db'}",
        artifacts_url=str(project / ".qflow" / "artifacts"),
        project_dir=project,
        token=token,
        allowed_hosts=("testserver",),
    )
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        key = run.step("2_nested").outputs["return"].key
        shown = client.get(f"/api/runs/{run.id}/artifacts/{key}/preview").json()
    assert shown["kind"] == "json"
    assert shown["value"] == {"shape": [3, 2], "rows": [[1, "a"], [2, [3]]], "__qflow_json__": 1}
