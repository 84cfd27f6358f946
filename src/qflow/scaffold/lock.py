"""Pins and a lock file from what is installed now (importlib.metadata; no network)."""

from __future__ import annotations

import importlib.metadata
import re
import time
from collections.abc import Iterable


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pin(name: str, fallback: str, extras: Iterable[str] = ()) -> str:
    """``name[extras]==<installed version>``, or ``fallback`` when it is not installed."""
    version = installed_version(name)
    suffix = f"[{','.join(sorted(extras))}]" if extras else ""
    return f"{name}{suffix}=={version}" if version else fallback


def closure(roots: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """Every installed distribution the roots (name, extras) need, by name → version."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    pending = [(name, frozenset(extras)) for name, extras in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (_canonical(name), extras) in seen:
            continue
        seen.add((_canonical(name), extras))
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[_canonical(dist.metadata["Name"])] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            wanted = marker is None or any(
                marker.evaluate({"extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def lock_text(roots: Iterable[tuple[str, Iterable[str]]]) -> str:
    """A ``requirements.lock``: ``name==version`` for the whole closure, sorted."""
    pins = closure(roots)
    header = (
        f"# The exact environment this project was created with (qflow new, "
        f"{time.strftime('%Y-%m-%d')}).\n"
        "# Reproduce it with: pip install -r requirements.lock && pip install -e . --no-deps\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
