"""Compose a run's config from ``conf/<workflow>.yaml`` (Hydra) and ``key=value`` overrides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError

_OVERRIDE = re.compile(r"^(\+{0,2}|~)([A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*)(?:=(.*))?$", re.S)


def parse_override(text: str) -> tuple[str, str, str | None]:
    """Split ``[+|++|~]key.path=value`` into (prefix, key, value), or explain what is wrong."""
    match = _OVERRIDE.match(text)
    if match is None or (match.group(3) is None and match.group(1) != "~"):
        raise ConfigError(
            f"Override {text!r} is malformed. Write key=value (for example model.C=0.5); "
            "use +key=value to add a key and ~key to remove one."
        )
    return match.group(1), match.group(2), match.group(3)


def load_config(
    workflow: str, overrides: Sequence[str] = (), conf_dir: Path | None = None
) -> dict[str, Any]:
    """The resolved config as plain data.

    With ``conf/<workflow>.yaml`` (or ``conf/config.yaml``) Hydra composes it with its
    groups and the overrides, and unknown keys are errors. Without a config file the overrides
    alone are the config, typed like YAML values (``n=3`` is an int).
    """
    for text in overrides:
        parse_override(text)
    config_file = _config_file(workflow, conf_dir)
    if config_file is None:
        return _from_overrides(overrides)
    _check_yaml(config_file)
    return _compose(config_file, overrides)


def _config_file(workflow: str, conf_dir: Path | None) -> Path | None:
    if conf_dir is None or not conf_dir.is_dir():
        return None
    for candidate in (conf_dir / f"{workflow}.yaml", conf_dir / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _from_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    plain = [o.lstrip("+") for o in overrides if not o.startswith("~")]
    try:
        config = OmegaConf.to_container(OmegaConf.from_dotlist(plain), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"Cannot read overrides {' '.join(plain)!r}: {exc}") from None
    return dict(config)  # type: ignore[arg-type]


def _check_yaml(path: Path) -> None:
    import yaml

    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"Config file {where} is not valid YAML: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}.") from None


def _compose(config_file: Path, overrides: Sequence[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_file.parent.resolve()), version_base=None):
            config = compose(config_file.stem, overrides=list(overrides))
        return dict(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip().replace("\n", " ")
        raise ConfigError(
            f"Config {config_file.name} with overrides {' '.join(overrides) or '(none)'}: "
            f"{message}\nHint: `qflow config show` prints the keys; use +key=value to add one."
        ) from None
    finally:
        GlobalHydra.instance().clear()
