"""A sweep's search space: the ``sweep:`` section of a workflow's config, parsed without eval.

::

    sweep:
      objective: accuracy          # a metric the runs log (its latest value is the result)
      direction: maximize          # or minimize (default)
      params:
        model.C: log_float(1e-4, 10)
        model.kernel: choice(linear, rbf)
        model.max_iter: int(100, 1000, step=100)

Expressions: ``float(low, high[, step=S][, log=true])``, ``log_float(low, high)``,
``int(low, high[, step=N][, log=true])``, ``log_int(low, high)`` and ``choice(a, b, ...)``.
Arguments are numbers, ``true``/``false``/``null``, bare words or quoted strings. A tiny
tokenizer reads them; nothing is evaluated as Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

Value = int | float | str | bool | None

FUNCTIONS = ("float", "log_float", "int", "log_int", "choice")
SECTION_KEYS = ("objective", "direction", "params")
DIRECTIONS = ("maximize", "minimize")
_HELP = (
    "Write float(low, high), log_float(low, high), int(low, high[, step=N]), "
    "log_int(low, high) or choice(a, b, ...)."
)
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<punct>[(),=])"""
    r"""|(?P<word>[^\s(),='"]+))"""
)
_INT = re.compile(r"[+-]?\d+")


class Kind(Enum):
    """What a parameter's values are."""

    FLOAT = "float"
    INT = "int"
    CHOICE = "choice"


@dataclass(frozen=True)
class Param:
    """One swept config key and the values it may take."""

    key: str
    expression: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Value, ...] = ()

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind is Kind.CHOICE:
            return CategoricalDistribution(self.choices)
        if self.kind is Kind.INT:
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=_int_step(self)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[Value]:
        """Every value, for the grid sampler; continuous ranges have none."""
        if self.kind is Kind.CHOICE:
            return list(self.choices)
        if self.kind is Kind.INT and not self.log:
            return list(range(int(self.low), int(self.high) + 1, _int_step(self)))
        if self.kind is Kind.FLOAT and self.step is not None:
            count = math.floor((self.high - self.low) / self.step + 1e-9)
            return [round(self.low + i * self.step, 12) for i in range(count + 1)]
        raise ConfigError(
            f"Sweep parameter {self.key!r}: {self.expression!r} is continuous; the grid "
            "sampler needs a list of values. Hint: give it a step (float(0, 1, step=0.1)), "
            "use choice(...), or pick another sampler (--sampler tpe)."
        )


def _int_step(param: Param) -> int:
    return int(param.step) if param.step is not None else 1


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep optimises (objective metric, direction) and over which config keys."""

    objective: str
    direction: str = "minimize"
    params: dict[str, Param] = field(default_factory=dict)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {key: param.distribution() for key, param in self.params.items()}

    def grid(self) -> dict[str, list[Value]]:
        return {key: param.grid() for key, param in self.params.items()}

    def expressions(self) -> dict[str, str]:
        return {key: param.expression for key, param in self.params.items()}


def search_space(
    section: Mapping[str, Any] | None,
    params: Mapping[str, str] | None = None,
    *,
    objective: str | None = None,
    direction: str | None = None,
) -> SearchSpace:
    """The search space of the config's ``sweep:`` section, with command-line ``params``,
    ``objective`` and ``direction`` taking precedence."""
    section = dict(section or {})
    unknown = [key for key in section if key not in SECTION_KEYS]
    if unknown:
        raise ConfigError(
            f"The sweep section has an unknown key {unknown[0]!r}; it takes "
            f"{', '.join(SECTION_KEYS)}.{did_you_mean(unknown[0], SECTION_KEYS)}"
        )
    expressions = _flatten(section.get("params") or {}, "")
    expressions.update(params or {})
    if not expressions:
        raise ConfigError(
            "The sweep has no parameters. Add a sweep.params section to the workflow's config "
            '(model.C: "log_float(1e-4, 10)") or pass --param model.C="log_float(1e-4, 10)".'
        )
    goal = objective or section.get("objective")
    if not goal or not isinstance(goal, str):
        raise ConfigError(
            "The sweep has no objective. Set sweep.objective in the workflow's config to a "
            "metric the runs log (objective: accuracy), or pass --objective accuracy."
        )
    way = str(direction or section.get("direction") or "minimize").lower()
    if way not in DIRECTIONS:
        raise ConfigError(
            f"Sweep direction {way!r} is not maximize or minimize.{did_you_mean(way, DIRECTIONS)}"
        )
    parsed = {key: parse_param(key, text) for key, text in expressions.items()}
    return SearchSpace(goal, way, parsed)


def _flatten(params: Any, prefix: str) -> dict[str, str]:
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"sweep.params{'.' + prefix if prefix else ''} must map config keys to "
            f"expressions, not {params!r}. {_HELP}"
        )
    flat: dict[str, str] = {}
    for key, value in params.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path))
        else:
            flat[path] = str(value)
    return flat


def parse_param(key: str, text: str) -> Param:
    """Parse one expression (``log_float(1e-4, 10)``) for config key ``key``."""
    tokens = _tokenize(key, text)
    if len(tokens) < 3 or tokens[0][0] != "word" or tokens[1] != ("punct", "("):
        raise _bad(key, text, "it is not a call like float(0, 1)")
    if tokens[-1] != ("punct", ")"):
        raise _bad(key, text, "it does not end with ')'")
    name = str(tokens[0][1])
    if name not in FUNCTIONS:
        raise _bad(key, text, f"{name!r} is not a known function{did_you_mean(name, FUNCTIONS)}")
    args, kwargs = _arguments(key, text, tokens[2:-1])
    if name == "choice":
        if kwargs or not args:
            raise _bad(key, text, "choice takes one or more values and no keywords")
        return Param(key, text, Kind.CHOICE, choices=tuple(args))
    return _range(key, text, name, args, kwargs)


def _range(key: str, text: str, name: str, args: list[Value], kwargs: dict[str, Value]) -> Param:
    if len(args) != 2 or set(kwargs) - {"step", "log"}:
        raise _bad(key, text, f"{name} takes low, high and optionally step= and log=")
    low, high = args
    if not _number(low) or not _number(high):
        raise _bad(key, text, "low and high must be numbers")
    step, log = kwargs.get("step"), kwargs.get("log", name.startswith("log_"))
    if not isinstance(log, bool):
        raise _bad(key, text, "log= takes true or false")
    if step is not None and (not _number(step) or step <= 0):  # type: ignore[operator]
        raise _bad(key, text, "step must be a positive number")
    if step is not None and log:
        raise _bad(key, text, "step and log cannot be combined")
    if low > high:  # type: ignore[operator]
        raise _bad(key, text, "low is above high")
    if log and low <= 0:  # type: ignore[operator]
        raise _bad(key, text, "a log range needs low > 0")
    if name.endswith("int"):
        if not all(isinstance(v, int) for v in (low, high, step if step is not None else 1)):
            raise _bad(key, text, "int bounds and step must be whole numbers")
        return Param(key, text, Kind.INT, low, high, step, log)  # type: ignore[arg-type]
    return Param(
        key,
        text,
        Kind.FLOAT,
        float(low),  # type: ignore[arg-type]
        float(high),  # type: ignore[arg-type]
        float(step) if step is not None else None,
        log,
    )


def _number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _tokenize(key: str, text: str) -> list[tuple[str, Value]]:
    tokens: list[tuple[str, Value]] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise _bad(key, text, f"cannot read it from {stripped[position:]!r}")
        position = match.end()
        kind = match.lastgroup or "word"
        raw = match.group(kind)
        if kind == "string":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", raw[1:-1])))
        else:
            tokens.append((kind, raw))
    return tokens


def _literal(word: str) -> Value:
    lowered = word.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if _INT.fullmatch(word):
        return int(word)
    try:
        return float(word)
    except ValueError:
        return word


def _arguments(
    key: str, text: str, tokens: list[tuple[str, Value]]
) -> tuple[list[Value], dict[str, Value]]:
    args: list[Value] = []
    kwargs: dict[str, Value] = {}
    groups: list[list[tuple[str, Value]]] = [[]]
    for token in tokens:
        if token == ("punct", ","):
            groups.append([])
        else:
            groups[-1].append(token)
    if groups == [[]]:
        return args, kwargs
    for group in groups:
        if len(group) == 1 and group[0][0] in ("word", "value"):
            if kwargs:
                raise _bad(key, text, "a positional value follows a keyword")
            word = group[0]
            args.append(_literal(str(word[1])) if word[0] == "word" else word[1])
        elif len(group) == 3 and group[0][0] == "word" and group[1] == ("punct", "="):
            value = group[2]
            if value[0] not in ("word", "value"):
                raise _bad(key, text, f"keyword {group[0][1]} has no value")
            kwargs[str(group[0][1])] = _literal(str(value[1])) if value[0] == "word" else value[1]
        else:
            raise _bad(key, text, "its arguments are not values separated by commas")
    return args, kwargs


def _bad(key: str, text: str, why: str) -> ConfigError:
    return ConfigError(f"Sweep parameter {key!r}: cannot parse {text!r}: {why}. {_HELP}")


def override(key: str, value: Value) -> str:
    """A Hydra override that sets ``key`` to ``value`` (strings quoted, so ``"1"`` stays text)."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{key}={value!r}"
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{escaped}'"
