"""``qf.instantiate``: build an object (typically a class-based step) from a ``_target_`` config.

```yaml
# conf/model/svm.yaml
_target_: example.steps.model.FitSVM
C: 1.0
kernel: rbf
```

``qf.instantiate(cfg.model)`` imports ``example.steps.model.FitSVM`` and calls it with
``C=1.0, kernel="rbf"``; keyword arguments given to ``instantiate`` win over the config. Nested
mappings with their own ``_target_`` are built first. ``_args_`` gives positional arguments and
``_partial_: true`` returns a ``functools.partial`` instead of calling the target. This is
Hydra's ``instantiate`` convention, with errors that name the config key and the parameters.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from qflow.errors import ConfigError, did_you_mean

_RESERVED = ("_target_", "_args_", "_partial_", "_convert_", "_recursive_")


def _plain(config: Any) -> Any:
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(config, resolve=True)
    return config


def locate(path: str, where: str = "_target_") -> Any:
    """The object ``path`` names: ``package.module.Name`` or ``package.module:Name``."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ConfigError(
            f"{where} {path!r} must name an object as package.module.Name "
            "(for example example.steps.model.FitSVM)."
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            if "." in module_name and ":" not in path:
                try:
                    return getattr(locate(module_name, where), attribute)
                except (ConfigError, AttributeError):
                    pass
            raise ConfigError(
                f"{where} {path!r}: module {module_name!r} cannot be imported ({exc}).\n"
                "Hint: check the spelling, or install the project (pip install -e .)."
            ) from None
        raise
    try:
        return getattr(module, attribute)
    except AttributeError:
        names = [n for n in vars(module) if not n.startswith("_")]
        raise ConfigError(
            f"{where} {path!r}: module {module_name!r} has no {attribute!r}."
            f"{did_you_mean(attribute, names)}"
        ) from None


def instantiate(config: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Build the object a ``_target_`` config describes; ``kwargs`` override config values."""
    path = "config"
    full_key = getattr(config, "_get_full_key", None)
    if callable(full_key):
        path = str(full_key(None) or path)
    data = _plain(config)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"qf.instantiate needs a mapping with a '_target_' key, got {type(data).__name__}."
        )
    return _build({**data, **kwargs}, args, path)


def _build_nested(value: Any, path: str) -> Any:
    if isinstance(value, Mapping) and "_target_" in value:
        return _build(value, (), path)
    if isinstance(value, Mapping):
        return {k: _build_nested(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_build_nested(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _build(data: Mapping[str, Any], args: tuple[Any, ...], path: str) -> Any:
    if "_target_" not in data:
        keys = ", ".join(map(str, data)) or "(none)"
        raise ConfigError(
            f"{path} has no '_target_' key, so qf.instantiate cannot tell what to build "
            f"(keys: {keys}).\nHint: add _target_: package.module.ClassName to its YAML."
        )
    target_path = str(data["_target_"])
    target = locate(target_path, f"{path}._target_")
    positional = [*args, *(_build_nested(v, path) for v in data.get("_args_", []))]
    params = {
        str(k): _build_nested(v, f"{path}.{k}") for k, v in data.items() if k not in _RESERVED
    }
    _check_parameters(target, target_path, params, path)
    if data.get("_partial_", False):
        return functools.partial(target, *positional, **params)
    try:
        return target(*positional, **params)
    except TypeError as exc:
        raise ConfigError(
            f"Cannot build {target_path!r} from {path}: {exc}.\n"
            f"Hint: {path} gives {', '.join(params) or 'no parameters'}."
        ) from exc


def _check_parameters(target: Any, target_path: str, params: Mapping[str, Any], path: str) -> None:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    names = [n for n, p in accepted.items() if p.kind is not inspect.Parameter.POSITIONAL_ONLY]
    for key in params:
        if key not in names:
            raise ConfigError(
                f"Config key {path}.{key} is not a parameter of {target_path!r}; "
                f"its parameters are: {', '.join(names) or '(none)'}."
                f"{did_you_mean(key, names)}"
            )
