"""Rules for user-chosen names (params, metrics, tags, steps, artifacts).

Names are stored exactly as given when they pass these rules, and are never used as file paths:
artifacts live under their content hash, so a name is only ever a label in the metadata store.
"""

from __future__ import annotations

import posixpath
import unicodedata
from urllib.parse import unquote

from qflow.errors import InvalidNameError

MAX_NAME_LENGTH = 250
_checked: set[tuple[str, str]] = set()


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it can be stored as a ``kind`` name, else raise ``InvalidNameError``."""
    if isinstance(name, str) and (kind, name) in _checked:
        return name
    if not isinstance(name, str):
        raise InvalidNameError(
            f"{kind} name {name!r} is a {type(name).__name__}, not a string.\n"
            f"Hint: pass the name as text, for example str({name!r})."
        )
    if not name or not name.strip():
        raise InvalidNameError(f"{kind} name {name!r} is empty. Give it a non-blank name.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"{kind} name {name[:40]!r}… is {len(name)} characters long; "
            f"the limit is {MAX_NAME_LENGTH}. Hint: use a shorter name."
        )
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad:
        raise InvalidNameError(
            f"{kind} name {name!r} contains the control or invisible character {bad[0]!r}. "
            "Names may hold any printable text, including unicode letters, but no control "
            "characters. Hint: remove it."
        )
    if len(_checked) < 100_000:
        _checked.add((kind, name))
    return name


def check_artifact_path(name: str) -> str:
    """Normalise a logged artifact's label to a relative POSIX path, or refuse it.

    The label is only metadata, but it is also what a user downloads the artifact as, so
    anything that would climb out of a folder (``..``, ``%2e%2e``, absolute paths) is refused.
    """
    check_name("artifact", name)
    decoded = unquote(name).replace("\\", "/")
    normalised = posixpath.normpath(decoded)
    if (
        decoded.startswith("/")
        or (len(decoded) > 1 and decoded[1] == ":")
        or normalised == ".."
        or normalised.startswith("../")
        or "/../" in f"/{decoded}/"
        or "\x00" in decoded
    ):
        raise InvalidNameError(
            f"artifact name {name!r} points outside the run's artifact folder. "
            "Use a relative name such as 'plots/loss.png', without '..' or a leading '/'."
        )
    return normalised
