"""Issue 17: two outputs with the same bytes and different serializers (a custom serializer's
b"1" and the JSON int 1) share a blob, but each loads back with its own serializer and type:
the serializer travels with each use of the artifact, not with its key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.store import serializers as ser

pytestmark = pytest.mark.integration


class Flag:
    """A value whose custom serializer writes b"1"."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flag)

    def __hash__(self) -> int:
        return 1


class FlagSerializer:
    name = "flag"
    version = "1"
    pickled = False

    def matches(self, value: object) -> bool:
        return isinstance(value, Flag)

    def dump(self, value: object, sink: ser.Sink) -> None:
        sink.write(b"1")

    def load(self, source: ser.Source) -> object:
        data = source.read_bytes() if isinstance(source, Path) else source.read()
        assert data == b"1"
        return Flag()


@pytest.fixture
def flag_serializer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import qflow.plugins.registry  # noqa: F401 - it provides the process's serializers on import

    # a copy of the process's registry for this test, then the user's call
    registry = ser.SerializerRegistry(list(ser.current()))
    monkeypatch.setattr(ser, "_source", lambda: registry)
    ser.register(FlagSerializer())
    yield


@qf.step
def make_flag() -> Flag:
    return Flag()


@qf.step
def make_one() -> int:
    return 1


@qf.step
def describe(flag: Any, one: Any) -> str:
    return f"{type(flag).__name__}/{type(one).__name__}/{one + 1}"


@qf.workflow
def same_bytes() -> object:
    return describe(make_flag(), make_one())


def _outputs(project: Path, run_id: str) -> dict[str, Any]:
    view = qf.Client(project).run(run_id)
    return {s.name.split("_", 1)[1]: s for s in view.steps}


def test_same_bytes_with_different_serializers_load_as_their_own_types(
    project: Path, flag_serializer: None
) -> None:
    run = qf.run(same_bytes, {}, project_dir=project)
    steps = _outputs(project, run.id)
    flag_ref = steps["make_flag"].outputs["return"]
    one_ref = steps["make_one"].outputs["return"]
    assert flag_ref.key == one_ref.key  # the same bytes, so the same blob
    assert (flag_ref.serializer, one_ref.serializer) == ("flag", "json")
    assert steps["make_flag"].load() == Flag()
    assert steps["make_one"].load() == 1
    assert type(steps["make_one"].load()) is int
    assert steps["describe"].load() == "Flag/int/2"
    assert steps["describe"].inputs["one"].serializer == "json"

    again = qf.run(same_bytes, {}, project_dir=project)  # cache hits
    cached = _outputs(project, again.id)
    assert cached["make_one"].cached_from
    assert type(cached["make_one"].load()) is int
    assert cached["make_flag"].load() == Flag()


def test_logged_artifacts_with_the_same_bytes_keep_their_serializers(
    project: Path, tmp_path: Path, flag_serializer: None
) -> None:
    from qflow.store import open_stores

    metadata, artifacts = open_stores(project)
    run = metadata.create_run(workflow="w", config={})
    file = tmp_path / "one.txt"
    file.write_bytes(b"1")
    as_file = artifacts.put_path(file)
    as_flag = artifacts.put(Flag())
    assert as_file.key == as_flag.key
    metadata.log_run_artifact(run.id, "flag", as_flag)
    metadata.log_run_artifact(run.id, "file", as_file)
    logged = {a.name: a.ref for a in metadata.run_artifacts(run.id)}
    assert artifacts.get(logged["flag"]) == Flag()
    loaded = artifacts.get(logged["file"])
    assert isinstance(loaded, Path)
    assert loaded.read_bytes() == b"1"
    metadata.dispose()
