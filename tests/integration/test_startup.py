"""What a command pays for before it does its work: the modules it imports and the schema
check. (Timings are in benchmarks/startup.py; these check the causes.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from qflow.cli.app import COMMANDS, app
from qflow.cli.group import build
from qflow.store.metadata.database import MIGRATIONS, Database, normalize_url, schema_head
from tests.conftest import _postgres_database

pytestmark = pytest.mark.integration

HEAVY = ("alembic", "hydra", "omegaconf", "pluggy", "pydantic", "rich", "sqlalchemy")

_IMPORTED = """
import contextlib, io, json, sys
from qflow.cli.app import run_cli
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = run_cli(json.loads(sys.argv[1]))
heavy = {m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2]))
print(json.dumps({
    "code": code,
    "out": out.getvalue(),
    "heavy": sorted(heavy),
    "commands": sorted(m for m in sys.modules if m.startswith("qflow.cli.commands.")),
    "postgresql": "sqlalchemy.dialects.postgresql" in sys.modules,
    "metadata": "importlib.metadata" in sys.modules,
}))
"""


def _imported(args: list[str], cwd: Path, cache: Path | None = None) -> dict[str, object]:
    """What ``qflow ARGS`` imports, in a new process (``cache``: its per-user cache folder)."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED, json.dumps(args), json.dumps(HEAVY)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            "NO_COLOR": "1",
            "COLUMNS": "100",
            "PATH": "/usr/bin:/bin",
            "XDG_CACHE_HOME": str(cache or cwd.parent / f"{cwd.name}-cache"),
        },
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench"\n\n[tool.qflow]\nworkflows = { tiny = "flows:tiny" }\n'
    )
    (root / "flows.py").write_text(
        "import qflow as qf\n\n\n@qf.step\ndef one() -> int:\n    return 1\n\n\n"
        "@qf.workflow\ndef tiny(cfg):\n    return one()\n"
    )
    return root


def test_help_imports_no_command_and_no_heavy_library(tmp_path: Path) -> None:
    result = _imported(["--help"], tmp_path)
    assert result["code"] == 0
    assert "runs " in str(result["out"]) and "schedule " in str(result["out"])
    assert result["commands"] == []
    assert result["heavy"] == ["pluggy"]  # plugins may add commands to the listing


def test_listing_runs_imports_its_command_only_and_no_migration_tool(tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    first = _imported(["run", "tiny"], project)
    assert first["code"] == 0
    assert "alembic" not in first["heavy"]  # a new SQLite store is created at the newest schema
    assert "pydantic" not in first["heavy"]  # typer's adapters only for values that need them
    assert "omegaconf" not in first["heavy"]  # no config file, no overrides: nothing to compose
    listed = _imported(["runs", "--limit", "20"], project)
    assert listed["code"] == 0
    assert "tiny" in str(listed["out"]) and "succeeded" in str(listed["out"])
    assert listed["commands"] == ["qflow.cli.commands.runs"]
    assert "alembic" not in listed["heavy"] and "hydra" not in listed["heavy"]
    assert "pydantic" not in listed["heavy"]
    assert listed["postgresql"] is False


def test_help_with_the_entry_points_cached_imports_no_importlib_metadata(tmp_path: Path) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    first = _imported(["--help"], work, cache)
    second = _imported(["--help"], work, cache)
    assert first["metadata"] is True and second["metadata"] is False
    assert second["out"] == first["out"] and "schedule " in str(second["out"])


def test_the_cached_entry_points_are_what_importlib_metadata_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    from qflow.distribution import entry_points

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    theirs = list(metadata.entry_points(group="qflow"))
    expected = [(e.name, e.value, e.dist.metadata["Name"], e.dist.version) for e in theirs]
    for _ in ("scanned", "cached"):
        ours = entry_points("qflow")
        assert [(e.name, e.value, e.distribution, e.version) for e in ours] == expected
        assert [e.load() for e in ours] == [e.load() for e in theirs]
    assert ("builtin", "qflow.plugins.builtin", "qflow-framework") in [e[:3] for e in expected]


def test_a_plugin_installed_or_removed_is_seen_with_the_entry_points_cached(
    tmp_path: Path,
) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(cache)}

    def plugins() -> list[str]:
        listed = subprocess.run(
            [sys.executable, "-m", "qflow", "plugins", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=tmp_path,
        )
        return [row["name"] for row in json.loads(listed.stdout)]

    assert "late-plugin" not in plugins()
    info = site / "late_plugin-1.0.dist-info"  # what an installer writes
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: late-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[qflow]\nlate-plugin = late_plugin_mod\n")
    (site / "late_plugin_mod.py").write_text("")
    assert "late-plugin" in plugins()
    shutil.rmtree(info)
    assert "late-plugin" not in plugins()


def test_the_help_listing_is_each_commands_own_short_help() -> None:
    for name, spec in COMMANDS.items():
        command = build(name, spec.load(), spec.context_settings())
        own = command.get_short_help_str(1000)
        assert own == spec.help, f"update COMMANDS[{name!r}] in qflow/cli/app.py to {own!r}"
    assert app.info.cls is not None


def _alembic(url: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    engine.dispose()


def _schema(path: Path) -> dict[tuple[str, str], str]:
    """sqlite_master, normalized; BIGINT and INTEGER are one type (INTEGER affinity) in SQLite."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()

    def normal(sql: str) -> str:
        sql = re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")")
        return re.sub(r"\bBIGINT\b", "INTEGER", sql).strip()

    return {(kind, name): normal(sql or "") for kind, name, sql in rows}


def test_a_new_sqlite_store_has_the_schema_the_migrations_build(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(_config())
    assert schema_head() == script.get_current_head()
    created, migrated = tmp_path / "created.db", tmp_path / "migrated.db"
    Database(f"sqlite:///{created}").dispose()
    _alembic(f"sqlite:///{migrated}", "head")
    assert _schema(created) == _schema(migrated)
    with sqlite3.connect(created) as conn:
        assert conn.execute("SELECT version_num FROM qflow_schema_version").fetchall() == [
            (schema_head(),)
        ]


@pytest.mark.postgres
def test_a_new_postgresql_store_has_the_schema_the_migrations_build(postgres_url: str) -> None:
    """pg_dump of a store created at head equals that of one migrated from nothing."""
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump (postgresql-client) is needed to compare schemas"
    opened = subprocess.run(
        [sys.executable, "-c", _OPEN_STORE, postgres_url], capture_output=True, text=True
    )
    assert opened.stdout.strip() == "alembic not imported", opened.stderr
    for migrated_url in _postgres_database():
        _alembic(normalize_url(migrated_url), "head")
        created, migrated = (_pg_schema(pg_dump, url) for url in (postgres_url, migrated_url))
    assert "CREATE TABLE public.runs" in created and "qflow_schema_version_pkc" in created
    assert created == migrated
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT version_num FROM qflow_schema_version").fetchall()
    assert row == [(schema_head(),)]


def _pg_schema(pg_dump: str, url: str) -> str:
    """The database's schema as pg_dump writes it, without its random \\restrict key."""
    dump = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(
        line for line in dump.splitlines() if not line.startswith(("\\restrict ", "\\unrestrict "))
    )


_OPEN_STORE = """
import sys
from qflow.store.metadata.database import Database
Database(sys.argv[1]).dispose()
print("alembic", "imported" if "alembic" in sys.modules else "not imported")
"""


def test_an_older_store_is_migrated_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    script = ScriptDirectory.from_config(_config())
    previous = script.get_revision(script.get_current_head()).down_revision
    assert isinstance(previous, str)
    _alembic(f"sqlite:///{path}", previous)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM qflow_schema_version").fetchone() == (
            previous,
        )
    Database(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM qflow_schema_version").fetchone() == (
            schema_head(),
        )
    migrated = tmp_path / "migrated.db"
    _alembic(f"sqlite:///{migrated}", "head")
    assert _schema(path) == _schema(migrated)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_the_package_scan_reads_what_importlib_metadata_reads() -> None:
    from importlib import metadata

    from qflow.environment import scan_packages

    expected: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            expected.setdefault(str(name).lower().replace("_", "-"), str(dist.version))
    scanned = scan_packages()
    assert scanned == dict(sorted(expected.items()))
    assert scanned["qflow-framework"] == metadata.version("qflow-framework")


def test_an_unknown_command_suggests_from_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from qflow.cli.app import run_cli

    assert run_cli(["runz"]) == 2
    assert "No such command 'runz'. Did you mean 'run', 'runs'?" in capsys.readouterr().err
    assert run_cli(["modls", "list"]) == 2
    assert "Did you mean 'models'?" in capsys.readouterr().err


def test_a_new_project_reuses_the_package_list_and_platform_another_project_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platform

    from qflow import environment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (tmp_path / "site").mkdir()
    scans: list[int] = []
    scan = environment.scan_packages

    def counted() -> dict[str, str]:
        scans.append(1)
        return scan()

    monkeypatch.setattr(environment, "scan_packages", counted)

    def first_run(project: str) -> dict[str, object]:
        monkeypatch.setattr(environment, "_memo", {})  # a new process
        root = _project(tmp_path / project)
        return environment.capture(root, "qflow run tiny", cache_dir=root / ".qflow")

    first = first_run("a")
    assert scans == [1] and len(list((tmp_path / "cache" / "qflow").glob("environment-*"))) == 1
    second = first_run("b")
    assert scans == [1]  # found in the user's cache
    assert second["packages"] == first["packages"] and second["platform"] == platform.platform()
    (tmp_path / "site" / "new_package.py").write_text("")  # an install changes a sys.path folder
    first_run("c")
    assert scans == [1, 1]
