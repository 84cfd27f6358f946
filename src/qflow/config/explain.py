"""Turn Hydra's composition errors into messages that name the key and list the valid choices.

Hydra reports an unknown group option as ``MissingConfigException`` ("Could not find
'model/svmx'" plus a search path), an unknown key as ``ConfigCompositionException`` ("Could not
override 'model.D'"), and a sweep without ``--multirun`` as "Ambiguous value". Each is rewritten
here as one ``ConfigError`` that says what is wrong and how to fix it in QFlow's own terms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, did_you_mean

_MISSING_OPTION = re.compile(r"Could not find '([^']+)/([^'/]+)'")
_MISSING_PRIMARY = re.compile(r"Cannot find primary config '([^']+)'")
_NO_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_AMBIGUOUS = re.compile(r"Ambiguous value for argument '([^']+)'")
_MULTIPLE = re.compile(r"Multiple values for ([\w/-]+(?:\.[\w-]+)*)")
_NO_DELETE = re.compile(r"Could not delete from config\. '([^']+)' does not exist")
_NO_DELETE_GROUP = re.compile(r"Could not delete\. No match for '([^']+)' in the defaults list")

HINT = "Hint: `qflow config show WORKFLOW` prints the resolved config and its groups."


def group_options(conf_dir: Path, group: str) -> list[str]:
    """The options of a config group: the YAML files in ``conf/<group>/``, without suffix."""
    folder = conf_dir / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))


def config_groups(conf_dir: Path) -> dict[str, list[str]]:
    """Every group under ``conf_dir`` (nested ones as ``a/b``) with its options."""
    groups: dict[str, list[str]] = {}
    if not conf_dir.is_dir():
        return groups
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        name = folder.relative_to(conf_dir).as_posix()
        options = group_options(conf_dir, name)
        if options:
            groups[name] = options
    return groups


def _keys_at(config: Mapping[str, Any] | None, path: str) -> tuple[str, list[str]]:
    """(parent path, keys there) for the deepest existing parent of ``path``."""
    parts = path.split(".")
    node: Any = config or {}
    walked: list[str] = []
    for part in parts[:-1]:
        if isinstance(node, Mapping) and part in node and isinstance(node[part], Mapping):
            node = node[part]
            walked.append(part)
        else:
            break
    keys = sorted(str(k) for k in node) if isinstance(node, Mapping) else []
    return ".".join(walked), keys


def explain(
    exc: Exception,
    config_name: str,
    overrides: Sequence[str],
    conf_dir: Path,
    base: Callable[[str], Mapping[str, Any] | None],
) -> ConfigError:
    """A ``ConfigError`` for a Hydra exception; ``base(key)`` composes without that override."""
    message = str(exc).strip()
    where = f"Config {config_name}.yaml"
    if match := _MISSING_OPTION.search(message):
        group, option = match.group(1), match.group(2)
        choices = group_options(conf_dir, group)
        source = next((o for o in overrides if o.lstrip("+~").startswith(f"{group}=")), None)
        origin = f"override {source!r}" if source else f"the defaults list of {config_name}.yaml"
        return ConfigError(
            f"Unknown option {option!r} for config group {group!r} (from {origin}). "
            f"Valid choices: {', '.join(choices) or '(none: conf/' + group + '/ is empty)'}."
            f"{did_you_mean(option, choices)}\n"
            f"Hint: add conf/{group}/{option}.yaml to make it a choice."
        )
    if match := _MISSING_PRIMARY.search(message):
        return ConfigError(f"Config file {match.group(1)!r} does not exist in {conf_dir}.")
    if match := _NO_OVERRIDE.search(message):
        return _unknown_key(match.group(1), overrides, where, conf_dir, base)
    if match := _AMBIGUOUS.search(message):
        text = match.group(1)
        key, _, value = text.partition("=")
        return ConfigError(
            f"Override {text!r} has several values. To run once per value, add -m: "
            f"`qflow run WORKFLOW -m {text}`. For a list write {key}=[{value}]; for a string "
            f"quote it: {key}='{value}'."
        )
    if match := _MULTIPLE.search(message):
        group = match.group(1)
        return ConfigError(
            f"Config group {group!r} is already chosen in {config_name}.yaml's defaults, so "
            f"+{group}=... cannot add it again. Write {group}=OPTION (without +) to pick "
            f"another option; choices: {', '.join(group_options(conf_dir, group)) or '(none)'}."
        )
    if match := _NO_DELETE.search(message) or _NO_DELETE_GROUP.search(message):
        key = match.group(1)
        parent, keys = _keys_at(base(f"~{key}"), key)
        return ConfigError(
            f"Cannot remove {key!r} with ~{key}: there is no such key"
            f"{' under ' + repr(parent) if parent else ''}. "
            f"Keys there: {', '.join(keys) or '(none)'}.{did_you_mean(key.split('.')[-1], keys)}"
        )
    if type(exc).__name__ == "OverrideParseException":
        first = message.splitlines()[0] if message else "cannot be parsed"
        return ConfigError(
            f"Overrides {' '.join(overrides)!r} cannot be parsed: {first}. Write key=value "
            "(model.C=0.5), +key=value to add a key, ~key to remove one, group=option to "
            "pick a config, and quote values with spaces or commas."
        )
    flat = message.replace("\n", " ")
    return ConfigError(f"{where} with overrides {' '.join(overrides) or '(none)'}: {flat}\n{HINT}")


def _unknown_key(
    key: str,
    overrides: Sequence[str],
    where: str,
    conf_dir: Path,
    base: Callable[[str], Mapping[str, Any] | None],
) -> ConfigError:
    source = next((o for o in overrides if o.split("=", 1)[0].lstrip("+") == key), key)
    value = source.partition("=")[2]
    if "/" in key:
        groups = sorted(config_groups(conf_dir))
        return ConfigError(
            f"Unknown config group {key!r} in override {source!r}. "
            f"Groups: {', '.join(groups) or '(none)'}.{did_you_mean(key, groups)}"
        )
    parent, keys = _keys_at(base(source), key)
    leaf = key.split(".")[-1]
    return ConfigError(
        f"Unknown config key {key!r} in override {source!r}: {where} has no such key"
        f"{' under ' + repr(parent) if parent else ''}. "
        f"Keys there: {', '.join(keys) or '(none)'}.{did_you_mean(leaf, keys)}\n"
        f"Hint: to add a new key, write +{key}={value}."
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "str"


_ACCEPTS = {
    "bool": {"bool"},
    "int": {"int"},
    "float": {"float", "int"},
    "mapping": {"mapping"},
    "list": {"list"},
    "str": {"str", "int", "float", "bool"},
}


def check_types(
    before: Mapping[str, Any], after: Mapping[str, Any], keys: Sequence[tuple[str, str]]
) -> None:
    """Refuse an override that changes a value's kind (``model.C=abc`` where C is a float).

    ``keys`` are (dotted key, override text). Nulls on either side are always accepted.
    """
    for key, text in keys:
        old, new = _lookup(before, key), _lookup(after, key)
        if old is None or new is None or old is _MISSING or new is _MISSING:
            continue
        if _kind(new) in _ACCEPTS[_kind(old)]:
            continue
        expected = {"mapping": "a group of keys", "list": "a list"}.get(
            _kind(old), f"a {_kind(old)}"
        )
        shown = f"keys {', '.join(map(str, old))}" if isinstance(old, Mapping) else repr(old)
        raise ConfigError(
            f"Override {text!r} has the wrong type: {key!r} is {expected} ({shown}), "
            f"not a {_kind(new)} ({new!r}).\n"
            f"Hint: give {key} {expected} value, or write ++{key}=... to replace it anyway."
        )


_MISSING = object()


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


_SHOWN_KEYS = 6
"""At most this many changed keys of a mapping parameter are named in a reason."""


def param_change(key: str, old: str | None, new: str | None) -> str:
    """Why a parameter differs, for cache reasons and ``qflow diff`` (``old`` and ``new`` are
    canonical JSON texts; None when absent).

    ``param C: 0.5 → 3.0``, with the types when they differ (``param C: 1 (int) → 1.0
    (float)``). For a mapping, only what changed inside it, by dotted key: ``param options:
    model.depth 2 → 3, lr added (0.1), momentum removed``, never both whole mappings.
    """
    before, after = _json(old), _json(new)
    if isinstance(before, dict) and isinstance(after, dict):
        changes = _mapping_changes(_flat(before), _flat(after))
        if changes:
            more = len(changes) - _SHOWN_KEYS
            tail = f", and {more} more" if more > 0 else ""
            return f"param {key}: {', '.join(changes[:_SHOWN_KEYS])}{tail}"
    kinds = (_kind_name(old, before), _kind_name(new, after))
    if None not in kinds and kinds[0] != kinds[1]:
        return f"param {key}: {old} ({kinds[0]}) → {new} ({kinds[1]})"
    return f"param {key}: {old} → {new}"


_UNREADABLE = object()


def _json(text: str | None) -> Any:
    if text is None:
        return _UNREADABLE
    import json

    try:
        return json.loads(text)
    except ValueError:
        return _UNREADABLE


def _kind_name(text: str | None, value: Any) -> str | None:
    if text is None:
        return None
    return "str" if value is _UNREADABLE else type(value).__name__


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _mapping_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    import json

    def shown(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(f"{name} removed (was {shown(before[name])})")
        elif name not in before:
            changes.append(f"{name} added ({shown(after[name])})")
        elif before[name] != after[name] or type(before[name]) is not type(after[name]):
            old, new = before[name], after[name]
            types = (
                f" ({type(old).__name__} → {type(new).__name__})"
                if type(old) is not type(new)
                else ""
            )
            changes.append(f"{name} {shown(old)} → {shown(new)}{types}")
    return changes
