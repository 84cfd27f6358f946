"""Compose a run's config from ``conf/<workflow>.yaml`` (Hydra) and ``key=value`` overrides."""

from __future__ import annotations

import contextlib
import copy
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.explain import check_types, explain
from qflow.config.sweep import is_group_override, parse_overrides
from qflow.errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

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
    reused = _from_base(config_file, list(overrides))
    if reused is not None:
        return reused
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
    plain = [o.lstrip("+") for o in overrides if not o.startswith("~")]
    if not plain:
        return {}  # nothing to read: OmegaConf (with antlr4 and yaml, ~50 ms) is not imported
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

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
    from omegaconf import OmegaConf

    config = _hydra_compose_unresolved(config_file, overrides)
    return dict(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]


def _hydra_compose_unresolved(config_file: Path, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_file.parent.resolve()), version_base=None):
            return compose(config_file.stem, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


_BASES: OrderedDict[tuple[str, tuple[str, ...], tuple[tuple[str, int, int], ...]], DictConfig]
_BASES = OrderedDict()
"""Composed configs before value overrides, by (config file, other overrides, the config
folder's files and their stamps); a few, most recently used last."""
_KEPT_BASES = 16
_BASES_LOCK = threading.Lock()  # the dashboard's launcher composes from several threads


def _from_base(config_file: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The config composed as Hydra would, without composing it again when only values differ.

    A Hydra compose costs tens of milliseconds, most of it Hydra's own defaults tree; a sweep
    or a multirun composes one config many times with different values. Hydra sets values
    (``key=value``, not a group choice) after composing everything else, so the rest is
    composed once per config folder state and the values are set on a copy with Hydra's own
    code. None when that shortcut does not apply or fails: the caller then composes from
    scratch, which gives the same config or the same error.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    conf_dir = config_file.parent
    parsed = parse_overrides(overrides, config_file.stem, conf_dir)
    is_value = [
        o.type is OverrideType.CHANGE
        and not o.is_sweep_override()
        and not o.is_hydra_override()
        and not is_group_override(o, conf_dir)
        for o in parsed
    ]
    values = [o for o, value in zip(parsed, is_value, strict=True) if value]
    rest = [text for text, value in zip(overrides, is_value, strict=True) if not value]
    added_or_removed = [o.key_or_group for o in parsed if o.type is not OverrideType.CHANGE]
    if _overlap([o.key_or_group for o in values], added_or_removed):
        return None  # Hydra applies these in the order given: compose from scratch
    try:
        base = _base(config_file, rest)
        config = copy.deepcopy(base)  # resolving may cache in the config: never in the base
        ConfigLoaderImpl._apply_overrides_to_config(values, config)
        resolved = dict(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    except (HydraException, OmegaConfBaseException):
        return None
    if values:
        try:
            before = OmegaConf.to_container(copy.deepcopy(base), resolve=True)
        except OmegaConfBaseException:
            return resolved  # as _compose: no type check without a config to compare with
        checked = [(o.key_or_group, str(o.input_line)) for o in values]
        check_types(before, resolved, checked)  # type: ignore[arg-type]
    return resolved


def _overlap(keys: list[str], others: list[str]) -> bool:
    """Whether a key is, holds or is held by one of ``others``."""
    return any(
        key == other or key.startswith(f"{other}.") or other.startswith(f"{key}.")
        for key in keys
        for other in others
    )


def _base(config_file: Path, overrides: list[str]) -> DictConfig:
    """``config_file`` composed with ``overrides``, unresolved, from the cache when the config
    folder's files are unchanged since."""
    conf_dir = config_file.parent
    stamps = []
    for path in sorted(p for p in conf_dir.rglob("*") if p.suffix in CONFIG_SUFFIXES):
        stat = path.stat()
        stamps.append((str(path.relative_to(conf_dir)), stat.st_mtime_ns, stat.st_size))
    key = (str(config_file.resolve()), tuple(overrides), tuple(stamps))
    with _BASES_LOCK:
        base = _BASES.get(key)
        if base is not None:
            _BASES.move_to_end(key)
            return base
    with _yaml_view(config_file) as composable:
        base = _hydra_compose_unresolved(composable, overrides)
    with _BASES_LOCK:
        _BASES[key] = base
        while len(_BASES) > _KEPT_BASES:
            _BASES.popitem(last=False)
    return base


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
