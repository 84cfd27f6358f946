"""Issue 17: out-of-range metrics are refused with one line naming the key (the run ends
failed, no step left running); folder artifacts load without leaving temp folders behind and
turn hostile archive members into one clear error."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import InvalidValueError, SerializationError
from qflow.store.artifacts import ArtifactStore
from tests.integration.reliability.conftest import write_project

pytestmark = pytest.mark.integration

METRIC_WORKFLOWS = """
import qflow as qf


@qf.step
def logs(step: int, value: float) -> int:
    qf.log_metric("ok", 1.0, step=0)
    qf.log_metric("loss", value, step=step)
    return 1


@qf.workflow
def edge(cfg):
    return logs(cfg.step, cfg.value)
"""


@pytest.mark.parametrize(
    ("step", "value", "message"),
    [
        ("9223372036854775808", "1.0", "step index 9223372036854775808 is outside the int64"),
        ("-9223372036854775809", "1.0", "step index -9223372036854775809 is outside the int64"),
        ("1", "1" + "0" * 400, "does not fit a float64"),
    ],
    ids=["step-2**63", "step-below-int64", "value-10**400"],
)
def test_an_out_of_range_metric_fails_the_run_in_one_line(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    step: str,
    value: str,
    message: str,
) -> None:
    write_project(project, METRIC_WORKFLOWS, module="edgewf")
    monkeypatch.syspath_prepend(str(project))
    code = run_cli(["run", "edge", "--project", str(project), f"+step={step}", f"+value={value}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "OverflowError" not in err
    assert f"Metric 'loss': {message}" in err or "Metric 'loss' got" in err
    assert message in err

    run = qf.Client(project).runs()[0]
    assert run.status == "failed"
    assert [(s.name, s.status) for s in run.steps] == [("0_logs", "failed")]
    assert [m.key for m in run.metric_history()] == ["ok"]


def test_the_step_index_range_is_int64_inclusive() -> None:
    qf.log_metric("edge", 0.0, step=2**63 - 1)
    qf.log_metric("edge", 0.0, step=-(2**63))
    with pytest.raises(
        InvalidValueError,
        match=r"Metric .edge.: step index 9223372036854775808 is outside the int64",
    ):
        qf.log_metric("edge", 0.0, step=2**63)


BIG_STEP_WORKFLOWS = """
import qflow as qf


@qf.step
def logs() -> int:
    for step in (2**62, 2**63 - 1, -(2**63)):
        qf.log_metric("far", float(step % 7), step=step)
    return 1


@qf.workflow
def far(cfg):
    return logs()
"""


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_int64_step_indices_are_stored_on_every_backend(
    project: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, backend: str
) -> None:
    """On PostgreSQL ``metrics.step`` was a 32-bit integer: step 2**62 failed when flushed."""
    if backend == "postgres":
        monkeypatch.setenv("QFLOW_STORE", request.getfixturevalue("postgres_url"))
    write_project(project, BIG_STEP_WORKFLOWS, module="farwf")
    monkeypatch.syspath_prepend(str(project))
    run = qf.run("far", project_dir=project)
    view = qf.Client(project).run(run.id)
    assert view.status == "succeeded"
    assert [(m.step, m.value) for m in view.metric_history("far")] == [
        (2**62, float(2**62 % 7)),
        (2**63 - 1, float((2**63 - 1) % 7)),
        (-(2**63), float(-(2**63) % 7)),
    ]


@pytest.mark.postgres
def test_the_step_column_is_widened_in_place_on_an_existing_postgres_store(
    postgres_url: str,
) -> None:
    """A store created before migration 0010 keeps its metrics and then takes 64-bit steps."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from qflow.store import MetadataStore
    from qflow.store.metadata.database import MIGRATIONS, normalize_url

    engine = sa.create_engine(normalize_url(postgres_url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, workflow, status, created_at, config, "
                "host, \"user\", pid, command, meta) VALUES ('r1', 'w', "
                "'running', 0, '{}', 'h', 'u', 1, '', '{}')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO metrics (run_id, key, value, bits, step, timestamp) "
                "VALUES ('r1', 'old', 1.0, 0, 2147483647, 0)"
            )
        )
    engine.dispose()
    store = MetadataStore(postgres_url)  # migrates to the newest schema
    try:
        store.log_metrics([("r1", None, "new", 2.0, 2**62, 1.0)])
        assert [(m.key, m.step) for m in store.metrics("r1")] == [
            ("old", 2147483647),
            ("new", 2**62),
        ]
    finally:
        store.dispose()


def _temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("qflow-dir-*")}


def test_folder_loads_leave_no_temp_folder_and_are_read_only(tmp_path: Path) -> None:
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("a")
    (source / "link").symlink_to("sub/a.txt")
    store = ArtifactStore(str(tmp_path / "artifacts"))
    ref = store.put_path(source)
    before = _temp_dirs()
    loaded = [store.get(ref) for _ in range(5)]
    assert _temp_dirs() == before
    assert len({str(p) for p in loaded}) == 1
    folder = loaded[0]
    assert isinstance(folder, Path)
    assert (folder / "sub" / "a.txt").read_text() == "a"
    assert (folder / "link").read_text() == "a"
    for path in (folder, folder / "sub", folder / "sub" / "a.txt"):
        assert path.stat().st_mode & 0o222 == 0, path


def test_a_folder_with_a_symlink_out_of_it_is_refused_when_stored(tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    (source / "passwd").symlink_to("/etc/passwd")
    store = ArtifactStore(str(tmp_path / "artifacts"))
    with pytest.raises(SerializationError, match=r"symlink 'passwd' points outside it"):
        store.put_path(source)


def _hostile_tar(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _escape(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


@pytest.mark.parametrize(
    ("member", "data", "name"),
    [
        (_link("passwd", "/etc/passwd"), b"", "passwd"),
        (_link("up", "../../outside"), b"", "up"),
        (_escape("../escape.txt"), b"bad", "../escape.txt"),
    ],
    ids=["absolute-link", "link-out", "path-out"],
)
def test_hostile_archive_members_are_one_clear_error(
    tmp_path: Path, member: tarfile.TarInfo, data: bytes, name: str
) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    raw = store.put_bytes(_hostile_tar(member, data))
    ref = type(raw)(raw.key, "dir", raw.size, "pathlib.Path", False)
    before = _temp_dirs()
    with pytest.raises(SerializationError, match=rf"member '{name}' is refused"):
        store.get(ref)
    assert _temp_dirs() == before
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "artifacts" / ".unpacked" / raw.key).exists()
    leftovers = list((tmp_path / "artifacts" / ".unpacked").iterdir())
    assert leftovers == []
    assert os.listdir(tmp_path / "artifacts" / ".tmp") == []
