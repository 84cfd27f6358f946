"""Parse overrides with Hydra's grammar and expand ``-m`` sweeps into one override list per run.

``qflow run wf -m model.C=0.1,1,10 seed=1,2`` is six runs: the cartesian product of the swept
values, the last key varying fastest (as Hydra's ``BasicSweeper`` orders them). Sweeps can be
comma lists, ``range(start, stop[, step])``, ``choice(a, b)`` and, for a config group,
``glob(pattern)`` over the group's options.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

MAX_RUNS = 10_000


def parse_overrides(
    overrides: Sequence[str], config_name: str = "", conf_dir: Path | None = None
) -> list[Override]:
    """Hydra ``Override`` objects, or a ``ConfigError`` that says how to write them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed: list[Override] = []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except HydraException as exc:
            if "=" not in text and not text.startswith("~"):
                raise ConfigError(
                    f"Override {text!r} is malformed. Write key=value (for example model.C=0.5); "
                    "use +key=value to add a key and ~key to remove one."
                ) from None
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"Override {text!r} cannot be parsed: {first}. Write key=value (model.C=0.5), "
                "+key=value to add a key, ~key to remove one, group=option to pick a config; "
                "quote values that hold spaces or commas."
            ) from None
    return parsed


def is_group_override(override: Override, conf_dir: Path | None) -> bool:
    """Whether the override picks a config group option (``model=svm``) or sets a value."""
    key = override.key_or_group
    if override.package is not None or "/" in key:
        return True
    return conf_dir is not None and (conf_dir / key.replace(".", "/")).is_dir()


def _values(override: Override, conf_dir: Path | None) -> list[str]:
    from hydra.core.override_parser.types import Glob

    key = override.get_key_element()
    value: Any = override.value()
    if isinstance(value, Glob):
        from qflow.config.explain import group_options

        options = group_options(conf_dir, override.key_or_group) if conf_dir else []
        matched = value.filter(options)
        if not matched:
            raise ConfigError(
                f"Sweep {override.input_line!r} matches no option of config group "
                f"{override.key_or_group!r}; options: {', '.join(options) or '(none)'}."
            )
        return [f"{key}={option}" for option in matched]
    if not override.is_discrete_sweep():
        raise ConfigError(
            f"Sweep {override.input_line!r} is a continuous interval; -m runs a list of "
            "values. Write the values (model.C=0.1,1,10) or range(start,stop,step), or use "
            "an optimizer (qflow sweep) for intervals."
        )
    return [f"{key}={item}" for item in override.sweep_string_iterator()]


def expand_multirun(
    overrides: Sequence[str], conf_dir: Path | None = None, *, limit: int = MAX_RUNS
) -> list[list[str]]:
    """One list of overrides per run: the cartesian product of every swept key's values."""
    choices: list[list[str]] = []
    for override in parse_overrides(overrides):
        if override.is_sweep_override():
            choices.append(_values(override, conf_dir))
        else:
            choices.append([str(override.input_line)])
    total = 1
    for values in choices:
        total *= len(values)
    if total > limit:
        raise ConfigError(
            f"Overrides {' '.join(overrides)!r} expand to {total} runs; the limit is {limit}. "
            "Hint: sweep fewer values, or search the space with qflow sweep."
        )
    return [list(combination) for combination in itertools.product(*choices)]
