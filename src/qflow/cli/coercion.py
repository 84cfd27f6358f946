"""Option values that need no conversion are taken as they are, without importing pydantic.

typer (0.29 and later) converts every option and argument value through a pydantic
``TypeAdapter`` that it builds on first use, even a value that is missing (``None``) or
already of the right type: any command with an option imports pydantic (≈ 0.1 s of a
0.5 s ``qflow runs``). ``install()`` has typer build a ``DeferredCoercion`` instead. It
gives the values whose conversion is plain (a missing value, a string for ``str``, a
decimal integer for ``int``, strings for ``list[str]``) the result typer's adapter gives
them, which ``tests/unit/cli/test_coercion.py`` checks against the adapter; every other
value and type (paths, floats, choices, ranges, custom parsers, files) goes to typer's
own coercion, built when first needed, so its conversions and its errors are unchanged.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer.core
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param

if TYPE_CHECKING:
    from typer._click import Context

_DECIMAL = re.compile(r"-?[0-9]+")
"""An integer as typer's adapter reads it, with nothing for ``int()`` to read differently."""


@dataclass(frozen=True)
class DeferredCoercion(RuntimeParam):
    """typer's coercion for one parameter, built only for a value that needs it."""

    descriptor: TypeDescriptor

    @functools.cached_property
    def full(self) -> RuntimeParam:
        """typer's own coercion (imports pydantic)."""
        return build_runtime_param(self.descriptor)

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        info = self.parameter_info
        if info.parser is None and self.descriptor.file_annotation is None:
            annotation = self.annotation
            if annotation is str and type(value) is str:
                return value
            if (
                annotation is int
                and info.min is None
                and info.max is None
                and (type(value) is int or (type(value) is str and _DECIMAL.fullmatch(value)))
            ):
                return int(value)
            if (
                annotation == list[str]
                and isinstance(value, list | tuple)
                and all(type(item) is str for item in value)
            ):
                return list(value)
        return self.full._coerce_value(value, param, ctx)


def deferred(descriptor: TypeDescriptor) -> RuntimeParam:
    return DeferredCoercion(descriptor.parameter_info, descriptor.annotation, descriptor)


def install() -> None:
    """Have typer build ``DeferredCoercion``s for the parameters of this process's commands.

    A typer without ``core.build_runtime_param`` (before 0.29: click's own types, no
    pydantic) is left as it is."""
    if getattr(typer.core, "build_runtime_param", None) is build_runtime_param:
        typer.core.build_runtime_param = deferred  # type: ignore[attr-defined]
