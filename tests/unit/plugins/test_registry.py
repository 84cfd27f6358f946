"""The plugin registry: one per process, built-ins and plugins looked up alike by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qflow as qf
from qflow.errors import ConfigError
from qflow.plugins import plugin_registry
from qflow.registry import QFlowRegistry
from qflow.registry.api import model_registry
from qflow.runtime.executor import LocalExecutor, create_executor
from qflow.store import serializers

_COUNT_SCANS = """
import importlib.metadata, json, sys
calls = []
real = importlib.metadata.entry_points
def counting(**kwargs):
    calls.append(kwargs.get("group"))
    return real(**kwargs)
importlib.metadata.entry_points = counting

import qflow as qf
from pathlib import Path
from qflow.plugins.registry import plugin_registry
from qflow.runtime.executor import create_executor
from qflow.runtime.trackers import known_trackers, trackers_from_config

@qf.step
def one() -> int:
    return 1

@qf.workflow
def tiny():
    return one()

project = Path(sys.argv[1])
qf.run(tiny, {}, project_dir=project)
qf.run(tiny, {}, project_dir=project, executor="local")
create_executor("local")
known_trackers()
trackers_from_config({"tracker": ["filetracker", "mlflow"]}, project)
print(json.dumps({
    "scans": calls.count("qflow"),
    "heavy": sorted(m for m in ("mlflow", "wandb", "ray") if m in sys.modules),
}))
"""


def test_entry_points_are_scanned_once_per_process_and_heavy_modules_stay_unloaded(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_SCANS, str(tmp_path / "project")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {"scans": 1, "heavy": []}


def test_builtin_executors_come_from_the_registry() -> None:
    executor = create_executor("local", workers=3)
    assert isinstance(executor, LocalExecutor)
    assert plugin_registry().get("executors", "local").plugin == "builtin-executors"
    with pytest.raises(
        ConfigError, match=r"(?s)Unknown executor 'paralel'.*Did you mean: parallel"
    ):
        create_executor("paralel")


def test_model_registries_by_name(tmp_path: Path) -> None:
    @qf.step
    def fit() -> dict[str, int]:
        return {"weights": 3}

    @qf.workflow
    def train() -> Any:
        return fit()

    run = qf.run(train, {}, project_dir=tmp_path)
    registry = model_registry("builtin", project_dir=tmp_path)
    assert isinstance(registry, QFlowRegistry)
    version = registry.register(run.id, "fit", name="churn")
    assert model_registry(project_dir=tmp_path).load(f"churn/{version.version}") == {"weights": 3}
    with pytest.raises(ConfigError, match=r"(?s)Unknown model registry 'bultin'.*builtin, mlflow"):
        model_registry("bultin")
    with pytest.raises(ConfigError, match=r"does not accept the options nope"):
        model_registry("builtin", nope=1)


def test_the_artifact_store_uses_the_registry_serializers() -> None:
    registry = plugin_registry().serializers
    assert serializers.current() is registry
    assert serializers.choose({"a": 1}).name == "json"
    assert serializers.serializer_versions() == registry.versions()
    bare = serializers.SerializerRegistry()
    assert bare.names() == ["npy", "parquet", "json", "bytes", "file", "dir", "pickle"]
    assert bare is not registry


def test_a_worker_process_stores_with_the_plugins_serializers(test_plugin: str) -> None:
    code = (
        "import qflow.runtime.worker\n"
        "from qflow.store import serializers\n"
        "names = serializers.current().names()\n"  # before anything imports the plugin itself
        "from qflow_test_plugin import Money\n"
        "print(names[-2:], serializers.choose(Money(1, 'EUR')).name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "['money', 'pickle'] money"
