"""A real per-step environment: six==1.16.0 from the package registry, a function run in it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qflow.runtime.pyenv import EnvironmentBuildError, call_in_env, ensure_env

PROBE = """import sys

import six


def version(prefix):
    print(f"six {six.__version__}")
    return prefix + six.__version__, six.__file__, sys.prefix


def qflow_works():
    import qflow as qf

    @qf.step
    def double(x: int) -> int:
        return 2 * x

    return double(21)


def broken():
    raise ValueError("no")
"""


@pytest.mark.integration
def test_a_real_environment_with_six(tmp_path: Path) -> None:
    import six  # the calling environment's six: a different version

    cache = tmp_path / ".qflow" / "envs"
    env = ensure_env(["six==1.16.0"], cache)
    assert env.created and env.path.parent == cache and (env.path / "qflow-env.json").is_file()
    assert env.lock[0].startswith("six==1.16.0 --hash=sha256:")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "probe.py").write_text(PROBE)

    result = call_in_env(env, "probe:version", ["v"], sys_path=[tmp_path / "src"])
    value, location, prefix = result.value
    assert value == "v1.16.0" and six.__version__ != "1.16.0"
    assert result.stdout == "six 1.16.0\n"
    assert Path(location).is_relative_to(env.path) and Path(prefix) == env.path
    assert Path(prefix) != Path(sys.prefix)
    assert call_in_env(env, "probe:qflow_works", sys_path=[tmp_path / "src"]).value == 42
    with pytest.raises(EnvironmentBuildError, match="ValueError: no"):
        call_in_env(env, "probe:broken", sys_path=[tmp_path / "src"])

    again = ensure_env(["six==1.16.0"], cache)  # cached: same folder, not rebuilt
    assert not again.created and again.digest == env.digest
    assert again.record()["lock"] == list(env.lock)
    assert again.record()["requirements"] == ["six==1.16.0"]


@pytest.mark.integration
def test_an_unknown_package_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentBuildError, match="Resolving the step environment"):
        ensure_env(["qflow-no-such-package-xyz==0.0.1"], tmp_path)
