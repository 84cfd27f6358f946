"""Compose a run's config from ``conf/<workflow>.yaml`` (Hydra) and ``key=value`` overrides."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qflow.config.explain import check_types, explain
from qflow.config.sweep import is_group_override, parse_overrides
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
    groups and the overrides; unknown keys, unknown group options and values of the wrong
    type are errors that name the key and list the choices. Without a config file the
    overrides alone are the config, typed like YAML values (``n=3`` is an int).
    """
    config_file = _config_file(workflow, conf_dir)
    if config_file is None:
        for text in overrides:
            parse_override(text)
        return _from_overrides(overrides)
    _check_yaml(config_file)
    with _yaml_view(config_file) as composable:
        return _compose(composable, list(overrides), config_file.parent)


def config_file_for(workflow: str, conf_dir: Path | None) -> Path | None:
    """The YAML file that configures ``workflow``, if the project has one."""
    return _config_file(workflow, conf_dir)


CONFIG_SUFFIXES = (".yaml", ".yml")
"""Both are read; where both exist for one name, ``.yaml`` wins."""


def _config_file(workflow: str, conf_dir: Path | None) -> Path | None:
    if conf_dir is None or not conf_dir.is_dir():
        return None
    for stem in (workflow, "config"):
        for suffix in CONFIG_SUFFIXES:
            candidate = conf_dir / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


@contextlib.contextmanager
def _yaml_view(config_file: Path) -> Iterator[Path]:
    """``config_file`` as Hydra can compose it. Hydra reads only ``.yaml``; when the folder
    holds ``.yml`` files (Kedro's ``parameters_data_science.yml``), compose from a temporary
    mirror of the folder where each ``.yml`` is linked as ``.yaml``."""
    conf_dir = config_file.parent.resolve()
    if not any(conf_dir.rglob("*.yml")):
        yield config_file
        return
    with tempfile.TemporaryDirectory(prefix="qflow-conf-") as tmp:
        mirror = Path(tmp)
        for path in sorted(conf_dir.rglob("*")):
            if path.is_dir() or path.suffix not in CONFIG_SUFFIXES:
                continue
            target = (mirror / path.relative_to(conf_dir)).with_suffix(".yaml")
            if path.suffix == ".yml" and path.with_suffix(".yaml").is_file():
                continue  # .yaml wins
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
        yield mirror / f"{config_file.stem}.yaml"


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


def _hydra_compose(config_file: Path, overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_file.parent.resolve()), version_base=None):
            config = compose(config_file.stem, overrides=overrides)
        return dict(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    finally:
        GlobalHydra.instance().clear()


def _try_compose(config_file: Path, overrides: list[str]) -> dict[str, Any] | None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _hydra_compose(config_file, overrides)
    except (HydraException, OmegaConfBaseException):
        return None


def _compose(config_file: Path, overrides: list[str], conf_dir: Path) -> dict[str, Any]:
    """Compose ``config_file`` (perhaps in a ``_yaml_view`` mirror); errors name the
    options and groups of the user's ``conf_dir``."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parsed = parse_overrides(overrides, config_file.stem, conf_dir)
    try:
        config = _hydra_compose(config_file, overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise explain(
            exc,
            config_file.stem,
            overrides,
            conf_dir,
            lambda skip: _try_compose(config_file, [o for o in overrides if o != skip]),
        ) from None
    values = [
        (o.key_or_group, str(o.input_line))
        for o in parsed
        if o.type.name == "CHANGE" and not is_group_override(o, conf_dir)
    ]
    if values:
        texts = {text for _, text in values}
        before = _try_compose(config_file, [o for o in overrides if o not in texts])
        if before is not None:
            check_types(before, config, values)
    return config
