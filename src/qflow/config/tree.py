"""``Config``: the one object a workflow receives its config as.

A ``Config`` is a ``dict`` (so ``cfg["catalog"]``, ``**cfg``, ``json.dumps(cfg)`` and pickling
work) whose keys are also attributes (``cfg.catalog.companies``, as in Hydra). Nested mappings
are ``Config`` too, at any depth and inside lists, whether the workflow was started by
``qflow run``, by ``qf.run`` or called from another workflow with a slice of its config.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from qflow.errors import ConfigError, did_you_mean


class ConfigKeyError(ConfigError, AttributeError):
    """``cfg.modle``: the config has no such key. An ``AttributeError`` too, so ``hasattr``
    and ``getattr(cfg, key, default)`` work; a ``ConfigError``, so the CLI shows one line."""


def to_config(value: Any, path: str = "") -> Any:
    """``value`` with every mapping (an OmegaConf one too) made a ``Config``, recursively;
    ``path`` is where it sits in the whole config (``catalog``), for error messages."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Config):
        return value
    if isinstance(value, Mapping):
        return Config(value, _path=path)
    if isinstance(value, list):
        return [to_config(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def to_plain(value: Any) -> Any:
    """``value`` with every ``Config`` made a plain ``dict`` again (what steps receive)."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Config):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list) and any(isinstance(item, Config | list) for item in value):
        return [to_plain(item) for item in value]
    return value


class Config(dict[str, Any]):
    """A config mapping with attribute access: ``cfg.model.C`` is ``cfg["model"]["C"]``.

    Keys that are also ``dict`` method names (``items``, ``keys``, ``get``…) are reached with
    ``cfg["items"]``. A missing key is an ``AttributeError`` (so ``getattr(cfg, "x", d)``
    and ``hasattr`` work) that lists the keys there are.
    """

    __slots__ = ("_path",)

    def __init__(
        self, data: Mapping[str, Any] | None = None, /, _path: str = "", **kwargs: Any
    ) -> None:
        super().__init__()
        object.__setattr__(self, "_path", _path)
        for key, value in {**dict(data or {}), **kwargs}.items():
            dict.__setitem__(self, key, to_config(value, self._key(key)))

    def _key(self, name: object) -> str:
        return f"{self._path}.{name}" if self._path else str(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            keys = sorted(map(str, self))
            where = f"under {self._path!r}" if self._path else "at the top"
            frame = sys._getframe(1)
            raise ConfigKeyError(
                f"Config key {self._key(name)!r} does not exist; keys {where}: "
                f"{', '.join(keys) or '(none)'}.{did_you_mean(name, keys)}\n"
                f"  at {frame.f_code.co_filename}:{frame.f_lineno}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, to_config(value, self._key(key)))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __dir__(self) -> list[str]:
        return sorted({*dir(dict), *(k for k in self if isinstance(k, str) and k.isidentifier())})

    def __repr__(self) -> str:
        return f"Config({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Config, (to_plain(self),))

    def copy(self) -> Config:
        return Config(self, _path=self._path)

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` copy, nested ``Config`` objects included."""
        result: dict[str, Any] = to_plain(self)
        return result
