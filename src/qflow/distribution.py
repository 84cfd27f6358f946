"""A distribution's ``Name`` and ``Version``, read from its metadata's header lines.

``Distribution.metadata`` parses the whole file with the email parser, long description
included (QFlow's own is 80 kB, some are hundreds): reading every package's name that way
took most of the first run in a new project, and QFlow's own name, read for each of its
entry points, a tenth of ``qflow --help``. The headers end at the first blank line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import Distribution


def name_and_version(dist: Distribution) -> tuple[str, str]:
    """``(Name, Version)`` of ``dist``; an empty string for a field it lacks."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = ""
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key == "Name" and not name:
            name = value.strip()
        elif key == "Version" and not version:
            version = value.strip()
    return name, version
