"""Installed distributions, read cheaply: a distribution's ``Name`` and ``Version`` from its
metadata's header lines, the ``qflow`` entry points cached per interpreter, and the key and
folder of QFlow's per-user caches.

``Distribution.metadata`` parses the whole file with the email parser, long description
included (QFlow's own is 80 kB, some are hundreds): reading every package's name that way
took most of the first run in a new project, and QFlow's own name, read for each of its
entry points, a tenth of ``qflow --help``. The headers end at the first blank line.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def interpreter_key() -> str:
    """What the installed distributions, and what they say about this machine, depend on:
    the interpreter, the ``sys.path`` folders' mtimes (installing, upgrading or removing a
    package adds or removes a folder in one of them), the machine and kernel (``os.uname()``)
    and the C library (``platform.libc_ver()``, which asks the running glibc, reading no file).
    """
    parts = [sys.executable, *os.uname(), *platform.libc_ver()]
    for entry in sys.path:
        try:
            parts.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
        except OSError:
            parts.append(f"{entry}:-")
    return "\n".join(parts)


def user_cache_file(stem: str) -> Path | None:
    """``stem``'s file in the user's cache for this interpreter and ``sys.path`` (its folders
    after the first, which is the script's or the working folder): each environment keeps its
    own, so two virtualenvs do not overwrite each other's. None without a user cache."""
    folder = user_cache_dir()
    if folder is None:
        return None
    where = "\n".join([sys.executable, *sys.path[1:]]).encode()
    return folder / f"{stem}-{zlib.crc32(where):08x}.json"  # the key inside is checked


def user_cache_dir() -> Path | None:
    """QFlow's cache for this user, shared by projects: ``$XDG_CACHE_HOME/qflow``, by default
    ``~/.cache/qflow`` (a relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec says); None
    when the user has no home folder to find (no cache then)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "qflow" if base.is_absolute() else None


def write_cache(path: Path, data: Any) -> None:
    """Replace the JSON file ``path`` at once (readers see the old or the new one); a folder
    that cannot be written is skipped: a cache is never needed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


@dataclass(frozen=True)
class EntryPoint:
    """An installed entry point and the distribution that declares it."""

    name: str
    value: str
    """``module:attribute`` (``[extras]`` may follow), or a module."""
    distribution: str
    version: str

    def load(self) -> Any:
        """The object the entry point names, as ``importlib.metadata.EntryPoint.load``."""
        module, _, attribute = self.value.split("[", 1)[0].partition(":")
        found: Any = importlib.import_module(module.strip())
        for part in filter(None, attribute.strip().split(".")):
            found = getattr(found, part)
        return found


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, in ``importlib.metadata.entry_points`` order.

    Read from the user's cache while ``interpreter_key()`` is unchanged, so a command that
    lists plugins (``qflow --help``) neither imports ``importlib.metadata`` (with the email
    package) nor reads every distribution's ``entry_points.txt``. An ``entry_points.txt``
    edited in place, which installers never do, goes unseen until a ``sys.path`` folder
    changes.
    """
    key = interpreter_key()
    cache = user_cache_file("entry-points")
    try:
        if cache is not None:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            if cached["key"] == key and group in cached["groups"]:
                return [EntryPoint(**entry) for entry in cached["groups"][group]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from importlib import metadata

    found = [
        EntryPoint(e.name, e.value, *(name_and_version(e.dist) if e.dist else ("", "")))
        for e in metadata.entry_points(group=group)
    ]
    if cache is not None:
        write_cache(cache, {"key": key, "groups": {group: [asdict(entry) for entry in found]}})
    return found
