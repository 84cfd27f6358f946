"""Code fingerprints: what a step reaches in the project's code, and what does not count."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qflow.graph import fingerprint
from qflow.graph.fingerprint import (
    cache_key,
    code_manifest,
    manifest_changes,
    normalized_source,
)

HELPERS = '''
import json
import numpy as np

FACTOR = 2
UNUSED = 1


class Scaler:
    """Scales."""

    k = 3

    def apply(self, x):
        return x * self.k


def scale(x):
    # double it
    return x * FACTOR


def unrelated(x):
    return x - 1
'''

STEPS = '''
import qflow as qf
import cache_helpers
from cache_helpers import Scaler, FACTOR as F


def local(x):
    return x + 1


@qf.step(outputs=("a", "b"))
def both(x):
    """Docstring."""
    return cache_helpers.scale(local(x)), Scaler().apply(x) * F


@qf.step
def arrays(x):
    from cache_helpers import np
    return np.asarray(x)
'''


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Write ``cache_helpers.py`` and ``cache_steps.py`` and import them afresh, with empty
    fingerprint caches (in a run they hold for the life of the process)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("_NODES", "_MANIFESTS", "_ORIGINS"):
        monkeypatch.setattr(fingerprint, name, {})
    monkeypatch.setattr(
        fingerprint, "_definitions", functools.cache(fingerprint._definitions.__wrapped__)
    )

    def load(helpers: str = HELPERS, steps: str = STEPS) -> Any:
        for name in ("cache_helpers", "cache_steps"):
            sys.modules.pop(name, None)
        (tmp_path / "cache_helpers.py").write_text(textwrap.dedent(helpers))
        (tmp_path / "cache_steps.py").write_text(textwrap.dedent(steps))
        importlib.invalidate_caches()
        fingerprint._NODES.clear()
        fingerprint._MANIFESTS.clear()
        fingerprint._ORIGINS.clear()
        fingerprint._definitions.cache_clear()
        return importlib.import_module("cache_steps")

    yield load
    for name in ("cache_helpers", "cache_steps"):
        sys.modules.pop(name, None)


def _manifest(module: Any, step: str = "both") -> fingerprint.CodeManifest:
    target = getattr(module, step)
    return code_manifest(target.code_root, {"outputs": list(target.outputs)})


def test_normalized_source_ignores_formatting_comments_and_docstrings() -> None:
    a = 'def f(x):\n    """Doc."""\n    # comment\n    return x+1\n'
    b = "def f(x):\n\n    return (x + 1)\n"
    c = "def f(x):\n    return x + 2\n"
    assert normalized_source(a) == normalized_source(b)
    assert normalized_source(a) != normalized_source(c)
    decorated = "@qf.step(outputs=('a',))\ndef f(x):\n    @cache\n    def g():\n        pass\n"
    assert "qf.step" not in normalized_source(decorated)
    assert "@cache" in normalized_source(decorated)
    assert "qf.step" in normalized_source(decorated, keep_decorators=True)


def test_cache_key_depends_on_inputs_and_params() -> None:
    base = cache_key("f", {"x": "h1"}, {"C": "1.0"})
    assert base == cache_key("f", {"x": "h1"}, {"C": "1.0"})
    assert base != cache_key("f", {"x": "h2"}, {"C": "1.0"})
    assert base != cache_key("f", {"x": "h1"}, {"C": "1"})


def test_manifest_lists_the_project_code_a_step_reaches(load: Callable[..., Any]) -> None:
    manifest = _manifest(load())
    assert manifest.step == "cache_steps.py:both()"
    assert set(manifest.code) == {
        "cache_steps.py:both()",
        "cache_steps.py:local()",
        "cache_helpers.py:scale()",
        "cache_helpers.py:FACTOR",
        "cache_helpers.py:Scaler",
        "cache_helpers.py:Scaler.apply()",
    }
    assert manifest.kinds["cache_helpers.py:FACTOR"] == "value"
    assert manifest.kinds["cache_helpers.py:Scaler"] == "class"
    assert manifest.texts[manifest.code["cache_helpers.py:FACTOR"]] == "FACTOR = 2"
    assert "# double it" not in manifest.texts[manifest.code["cache_helpers.py:scale()"]]
    assert manifest.packages == {}
    assert manifest.options == {"outputs": ["a", "b"]}


def test_packages_count_by_distribution_version(load: Callable[..., Any]) -> None:
    manifest = _manifest(load(), "arrays")
    assert manifest.packages["numpy"] == importlib.metadata.version("numpy")
    assert "cache_helpers.py:np" not in manifest.code


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("return x * FACTOR", "return x * FACTOR + 0", "helper scale() in cache_helpers.py"),
        ("FACTOR = 2", "FACTOR = 2.0", "constant FACTOR in cache_helpers.py"),
        ("return x * self.k", "return x * self.k * 1", "method Scaler.apply() in cache_helpers.py"),
        ("    k = 3", "    k = 4", "class Scaler in cache_helpers.py"),
    ],
    ids=["helper", "constant-type", "method", "class-attribute"],
)
def test_a_reached_change_changes_the_fingerprint_and_is_named(
    load: Callable[..., Any], old: str, new: str, reason: str
) -> None:
    before = _manifest(load())
    after = _manifest(load(helpers=HELPERS.replace(old, new)))
    assert before.fingerprint != after.fingerprint
    changes = manifest_changes(before.parsed, after.parsed)
    assert changes == [f"{reason} changed"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("# double it", "# double it, always"),
        ('"""Scales."""', '"""Scales by k."""'),
        ("return x * FACTOR", "return   (x*FACTOR)"),
        ("return x - 1", "return x - 2"),
        ("UNUSED = 1", "UNUSED = 5"),
    ],
    ids=["comment", "docstring", "whitespace", "unreached-helper", "unreached-constant"],
)
def test_non_changes_keep_the_fingerprint(load: Callable[..., Any], old: str, new: str) -> None:
    before = _manifest(load())
    after = _manifest(load(helpers=HELPERS.replace(old, new)))
    assert before.fingerprint == after.fingerprint


def test_output_names_and_package_versions_count(
    load: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _manifest(load())
    swapped = _manifest(load(steps=STEPS.replace('("a", "b")', '("b", "a")')))
    assert manifest_changes(before.parsed, swapped.parsed) == ["outputs (a, b) → (b, a)"]
    arrays = _manifest(load(), "arrays")
    monkeypatch.setattr(fingerprint, "_VERSIONS", {"numpy": ("numpy", "99.0")})
    upgraded = _manifest(load(), "arrays")
    assert manifest_changes(arrays.parsed, upgraded.parsed) == [
        f"package numpy {arrays.packages['numpy']} → 99.0"
    ]


def test_closures_and_defaults_count(load: Callable[..., Any]) -> None:
    steps = """
    import qflow as qf

    def make(k, default=1):
        @qf.step
        def mul(x, y=default):
            return x * k * y
        return mul

    two = make(2)
    three = make(3)
    other_default = make(2, default=5)
    """
    module = load(steps=steps)
    prints = {name: _manifest(module, name).fingerprint for name in ("two", "three")}
    prints["other_default"] = _manifest(module, "other_default").fingerprint
    assert len(set(prints.values())) == 3


def test_manifest_is_computed_once_per_function(load: Callable[..., Any]) -> None:
    module = load()
    assert _manifest(module) is _manifest(module)


def test_exec_built_functions_are_told_apart_by_their_code_whatever_linecache_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ``exec(text)`` compiles to the same file name, ``<string>``; linecache may hold
    another text under it, so such code is fingerprinted by its bytecode."""
    import linecache

    from qflow.graph.fingerprint import code_manifest

    def build(multiplier: int) -> Any:
        namespace: dict[str, Any] = {}
        exec(f"def scale(xs):\n    return [x * {multiplier} for x in xs]\n", namespace)
        return namespace["scale"]

    stale = (30, None, ["def scale(xs):\n", "    return xs\n"], "<string>")
    monkeypatch.setitem(linecache.cache, "<string>", stale)
    two, three, two_again = build(2), build(3), build(2)
    assert code_manifest(two, {}).fingerprint != code_manifest(three, {}).fingerprint
    assert code_manifest(two, {}).fingerprint == code_manifest(two_again, {}).fingerprint
