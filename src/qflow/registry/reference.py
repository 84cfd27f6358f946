"""Model references: ``NAME@ALIAS``, ``NAME/VERSION``, ``NAME/latest`` or just ``NAME``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qflow.errors import InvalidNameError
from qflow.names import check_name

_VERSION = re.compile(r"^(?P<name>.+)/(?P<version>\d+|latest)$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference; at most one of ``version`` and ``alias`` is set (neither = latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return f"{self.name}/{self.version if self.version is not None else 'latest'}"


def check_model_name(name: str, kind: str = "model") -> str:
    """A model or alias name: any printable text without '@' or '/' (they delimit refs)."""
    check_name(kind, name)
    if "@" in name or "/" in name or name != name.strip():
        raise InvalidNameError(
            f"{kind} name {name!r} contains '@', '/' or surrounding spaces, which separate the "
            "parts of a model reference (NAME@ALIAS, NAME/VERSION). Hint: use '-' or '_'."
        )
    if kind == "alias" and (name.isdigit() or name == "latest"):
        raise InvalidNameError(
            f"alias name {name!r} would read as a version. Hint: pick a word, e.g. 'production'."
        )
    return name


def parse_ref(text: str) -> ModelRef:
    """``churn@production`` → alias, ``churn/3`` → version 3, ``churn`` → latest version."""
    if text.startswith("models:/"):
        text = text.removeprefix("models:/")
    name, at, alias = text.rpartition("@")
    if at:
        return ModelRef(check_model_name(name), alias=check_model_name(alias, "alias"))
    match = _VERSION.match(text)
    if match:
        version = match["version"]
        return ModelRef(
            check_model_name(match["name"]), None if version == "latest" else int(version)
        )
    return ModelRef(check_model_name(text))
