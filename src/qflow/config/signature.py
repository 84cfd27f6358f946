"""A workflow's parameters as its config: defaults and types read from its signature.

``def playlist(genre: str = "Sci-Fi", recommendations: int = 5)`` needs no YAML file: its
defaults are the config ``qflow config show playlist`` prints, and ``recommendations=abc`` is
refused at launch, before anything is recorded, with the key, the expected type and the value.
A parameter without an annotation is typed by its default (``n=5`` makes ``n`` an int).
Only annotations a config value can have are checked (``int``, ``float``, ``str``, ``bool``,
``list[...]``, ``dict[...]``, ``tuple[...]``, ``Literal``, unions and ``None``); others pass.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from qflow.config.tree import Config
from qflow.errors import ConfigError

_SCALARS: dict[type, str] = {bool: "a bool", int: "an int", float: "a float", str: "a string"}
_JSON_SCALARS = (str, int, float, bool, type(None))


class _Mismatch(Exception):
    """A value that does not fit its annotation; ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def parameter_types(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Each parameter's type: its annotation, else the type of its default (if a scalar)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation naming what cannot be imported here: use what is plain
        hints = {
            name: p.annotation
            for name, p in signature.parameters.items()
            if p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str)
        }
    types_: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if name in hints:
            types_[name] = hints[name]
        elif type(param.default) in _SCALARS:
            types_[name] = type(param.default)
    return types_


def signature_defaults(signature: inspect.Signature) -> dict[str, Any]:
    """The parameters' defaults that a config can hold (plain data), in signature order."""
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if param.default is not inspect.Parameter.empty and _is_plain(param.default)
    }


def with_defaults(signature: inspect.Signature, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` over the mapping defaults of the signature, merged key by key as Hydra
    merges overrides into a config file: ``options.depth=3`` keeps the default's other keys
    (a parameter given a mapping whose default is one)."""
    merged = dict(config)
    for name, param in signature.parameters.items():
        if isinstance(param.default, Mapping):
            given = merged.get(name, {})
            merged[name] = _merge(param.default, given) if isinstance(given, Mapping) else given
    return merged


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        merged[key] = (
            _merge(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
        )
    return merged


def _is_plain(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def check_parameters(
    workflow: str, types_: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """``values`` checked against ``types_`` (ints widened to float where a float is
    expected, lists made tuples for a tuple); a ``ConfigError`` names the first bad key."""
    checked = dict(values)
    for key, value in values.items():
        if key not in types_:
            continue
        try:
            checked[key] = _conform(value, types_[key])
        except _Mismatch as exc:
            raise ConfigError(
                f"Parameter {key!r} of workflow {workflow!r} must be {exc.expected}, "
                f"not {value!r} ({type(value).__name__}).\n"
                f"Hint: qflow run {workflow} {key}=VALUE; `qflow config show {workflow}` "
                "prints the parameters and their defaults."
            ) from None
    return checked


def _describe(hint: Any) -> str:
    if hint in _SCALARS:
        return _SCALARS[hint]
    if hint is type(None):
        return "null"
    return f"a {getattr(hint, '__name__', None) or str(hint).replace('typing.', '')}"


def _conform(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` wants it, or ``_Mismatch``; hints it cannot judge pass."""
    if hint is Any or hint is object or isinstance(hint, str | typing.TypeVar):
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        for arm in args:
            try:
                return _conform(value, arm)
            except _Mismatch:
                continue
        raise _Mismatch(" or ".join(_describe(a) for a in args))
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch(f"one of {', '.join(map(repr, args))}")
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise _Mismatch("null")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("a bool (true or false)")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch("an int")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch("a float")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float | bool):
            return str(value)
        raise _Mismatch("a string")
    container = origin or hint
    if container in (list, tuple, set, frozenset) or _is_abc(container, "Sequence"):
        if not isinstance(value, list | tuple):
            raise _Mismatch(f"a list ({_describe(hint)})")
        if container is tuple and args and ... not in args:
            if len(args) != len(value):
                raise _Mismatch(f"a list of {len(args)} values ({_describe(hint)})")
            return tuple(_conform(v, a) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        items = [_conform(v, item) for v in value]
        return tuple(items) if container is tuple else items
    if container is dict or _is_abc(container, "Mapping"):
        if not isinstance(value, Mapping):
            raise _Mismatch(f"a mapping of keys ({_describe(hint)})")
        item = args[1] if len(args) == 2 else Any
        conformed = {k: _conform(v, item) for k, v in value.items()}
        return Config(conformed) if isinstance(value, Config) else conformed
    return value


def _is_abc(container: Any, name: str) -> bool:
    return getattr(container, "__module__", "") == "collections.abc" and container.__name__ == name
