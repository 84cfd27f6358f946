"""Plugins through the real entry-point machinery: QFlow's built-ins, the test plugin package
(serializer, CLI command, executor, tracker) and a broken plugin."""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.cli.app import run_cli
from qflow.errors import ConfigError, QFlowError
from qflow.plugins import PluginRegistry, create_plugin_manager, hookimpl, hookspecs
from qflow.plugins.extensions import by_name
from qflow.plugins.registry import create_trackers, plugin_registry
from qflow.runtime.executor import create_executor
from qflow.store import serializers


def test_every_hookspec_lives_in_hookspecs_with_a_docstring() -> None:
    manager = create_plugin_manager(entry_points=False)
    names = {caller.name for caller in manager.hook.__dict__.values() if hasattr(caller, "name")}
    for hook in ("register_trackers", "register_executors", "register_serializers"):
        assert hook in names
    for spec in hookspecs.ALL_SPECS:
        for name, function in inspect.getmembers(spec, inspect.isfunction):
            assert function.__doc__, f"{spec.__name__}.{name} has no docstring"
    assert {"register_model_registries", "register_commands", "before_run"} <= names


def test_builtins_come_from_qflows_own_entry_point() -> None:
    manager = create_plugin_manager()
    source = manager.sources["builtin"]
    assert source.distribution == "qflow-framework"
    assert source.target == "qflow.plugins.builtin"
    assert by_name("trackers", manager)["filetracker"].plugin == "builtin"
    registry = PluginRegistry(manager)
    assert repr(create_trackers("filetracker", registry)[0]) == "FileTracker()"
    assert registry.get("executors", "parallel").plugin == "builtin-executors"
    assert registry.get("trackers", "mlflow").plugin == "builtin-trackers"
    assert registry.get("model_registries", "mlflow").plugin == "builtin-registries"
    assert registry.names("executors")[:3] == ["local", "parallel", "ray"]
    assert registry.names("trackers")[:3] == ["filetracker", "mlflow", "wandb"]
    assert registry.names("model_registries")[:2] == ["builtin", "mlflow"]
    assert registry.serializers.names()[:6] == ["npy", "parquet", "json", "bytes", "file", "dir"]
    assert registry.serializers.names()[-1] == "pickle"
    for name in ("npy", "parquet", "json", "bytes", "file", "dir", "pickle"):
        assert registry.get("serializers", name).plugin == "builtin"


def test_the_builtin_plugin_is_registered_even_without_entry_points() -> None:
    manager = create_plugin_manager(entry_points=False)
    assert manager.has_plugin("builtin")
    assert "filetracker" in by_name("trackers", manager)
    assert "testplugin" not in dict(manager.list_name_plugin())


def test_plugin_serializer_stores_its_type_and_loads_it_back(
    test_plugin: str, tmp_path: Path
) -> None:
    from qflow_test_plugin import Money

    @qf.step
    def price(cents: int) -> Money:
        return Money(cents, "EUR")

    @qf.workflow
    def pricing(cents: int) -> Any:
        return price(cents)

    run = qf.run(pricing, {"cents": 1250}, project_dir=tmp_path, executor="inline")
    ref = run.step("price").outputs["return"]
    assert ref.serializer == "money"
    assert not ref.pickled
    assert run.step("price").load() == Money(1250, "EUR")
    names = plugin_registry().serializers.names()
    assert names.index("money") == names.index("pickle") - 1
    assert serializers.current() is plugin_registry().serializers
    assert run.meta["executor"] == "inline"


def test_plugin_executor_and_tracker_by_name(test_plugin: str, tmp_path: Path) -> None:
    assert create_executor("inline").name == "inline"
    with pytest.raises(
        QFlowError, match=r"Unknown executor 'inlin'; installed: local, parallel, ray, inline"
    ):
        create_executor("inlin")
    events = tmp_path / "events.jsonl"
    trackers = create_trackers([{"name": "recorder", "path": str(events)}, "filetracker"])
    assert [type(t).__name__ for t in trackers] == ["RecordingTracker", "FileTracker"]

    @qf.step
    def one() -> int:
        return 1

    @qf.workflow
    def tiny() -> Any:
        return one()

    run = qf.run(tiny, {}, project_dir=tmp_path, plugins=trackers)
    assert json.loads(events.read_text()) == {
        "event": "after_run",
        "run_id": run.id,
        "status": "succeeded",
    }


def test_unknown_or_malformed_extension_names_list_the_choices(test_plugin: str) -> None:
    with pytest.raises(ConfigError, match=r"Unknown tracker 'mlfow'; installed: .*filetracker"):
        create_trackers({"name": "mlfow"})
    with pytest.raises(ConfigError, match=r"must be a name or a mapping with a 'name' key"):
        create_trackers([{"tracking_uri": "x"}])
    with pytest.raises(ConfigError, match=r"does not accept the options nope"):
        plugin_registry().create("trackers", "filetracker", {"nope": 1})
    with pytest.raises(
        ConfigError, match=r"(?s)Unknown model registry 'mlfow'.*Did you mean: mlflow"
    ):
        plugin_registry().create("model_registries", "mlfow")
    with pytest.raises(ConfigError, match=r"Unknown extension kind 'executor'.*executors"):
        plugin_registry().get("executor", "local")


def test_plugin_command_and_plugins_listing_through_the_cli(
    test_plugin: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert run_cli(["hello", "Ada"]) == 0
    assert capsys.readouterr().out == "hello Ada, from qflow-test-plugin\n"
    assert run_cli(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    plugin = rows["testplugin"]
    assert plugin["origin"] == "qflow-test-plugin 0.1.0"
    assert plugin["path"].endswith("qflow_test_plugin/plugin.py")
    assert plugin["provides"] == {
        "trackers": ["recorder"],
        "executors": ["inline"],
        "serializers": ["money"],
        "commands": ["hello"],
    }
    assert rows["builtin-executors"]["provides"]["executors"] == ["local", "parallel", "ray"]
    assert rows["builtin-trackers"]["provides"]["trackers"] == ["mlflow", "wandb"]
    assert rows["builtin-registries"]["provides"]["model_registries"] == ["builtin", "mlflow"]
    assert run_cli(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "testplugin" in out and "qflow-test-plugin 0.1.0" in out and "commands: hello" in out


class _Faulty:
    @hookimpl
    def register_commands(self) -> dict[str, Any]:
        raise RuntimeError("boom")

    @hookimpl
    def register_trackers(self) -> dict[str, Any]:
        return {"filetracker": object, "faulty": object}


def test_a_failing_register_hook_is_reported_and_the_rest_still_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = create_plugin_manager([_Faulty()], entry_points=False)
    with caplog.at_level(logging.WARNING):
        assert by_name("commands", manager) == {}
        trackers = by_name("trackers", manager)
    assert trackers["filetracker"].plugin == "builtin"
    assert "faulty" in trackers
    text = caplog.text
    assert "failed in register_commands" in text and "RuntimeError: boom" in text
    assert "also provides the tracker 'filetracker'; the one from 'builtin' is used" in text


def test_serializer_names_must_be_unique() -> None:
    class Other:
        name, version, pickled = "json", "1", False

    registry = serializers.SerializerRegistry()
    with pytest.raises(ValueError, match="serializer name 'json' is taken by JsonSerializer"):
        registry.register(Other())  # type: ignore[arg-type]
    before = registry.names()
    registry.register(serializers.JsonSerializer())
    assert before == registry.names()


def test_registering_a_class_is_refused_with_a_hint() -> None:
    with pytest.raises(QFlowError, match=r"forgotten the `\(\)` after _Faulty"):
        create_plugin_manager([_Faulty], entry_points=False)


def _fake_distribution(root: Path, name: str, module: str, source: str) -> None:
    """An installed distribution on disk: dist-info with an entry point, and its module."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[qflow]\n{name} = {module}\n")
    (root / f"{module}.py").write_text(source)


def test_a_broken_plugin_is_one_warning_by_name_and_qflow_still_starts(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _fake_distribution(site, "broken_plugin", "broken_plugin_mod", "import not_installed_xyz\n")
    env = {**os.environ, "PYTHONPATH": str(site), "NO_COLOR": "1", "COLUMNS": "250"}
    listing = subprocess.run(
        [sys.executable, "-m", "qflow", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    warnings = [line for line in listing.stderr.splitlines() if "broken_plugin" in line]
    assert len(warnings) == 1
    assert "QFlow plugin 'broken_plugin'" in warnings[0]
    assert "ModuleNotFoundError" in warnings[0] and "not_installed_xyz" in warnings[0]
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["broken_plugin"]["status"] == "failed"
    assert rows["broken_plugin"]["origin"] == "broken_plugin 1.0"
    assert rows["builtin"]["status"] == "loaded"
    helped = subprocess.run(
        [sys.executable, "-m", "qflow", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert helped.returncode == 0
    assert "run" in helped.stdout
